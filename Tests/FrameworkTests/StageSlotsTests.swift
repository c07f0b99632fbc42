import Foundation
import Testing
@testable import Framework

/// The slots a sweep's executors share: never more holders than slots, and a waiter
/// that is cancelled leaves without one.
@Suite struct StageSlotsTests {
    final class Gauge: @unchecked Sendable {
        let lock = NSLock()
        var now = 0, most = 0
        func enter() { lock.withLock { now += 1; most = max(most, now) } }
        func leave() { lock.withLock { now -= 1 } }
    }

    @Test func neverMoreHoldersThanSlots() async {
        let slots = StageSlots(2), gauge = Gauge()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    guard await slots.acquire() else { return }
                    gauge.enter()
                    try? await Task.sleep(for: .milliseconds(5))
                    gauge.leave()
                    slots.release()
                }
            }
        }
        #expect(gauge.most == 2)
        // Every slot came back: two can be taken at once again.
        let first = await slots.acquire(), second = await slots.acquire()
        #expect(first && second)
    }

    @Test func aCancelledWaiterLeavesWithoutASlot() async {
        let slots = StageSlots(1)
        #expect(await slots.acquire())
        let waiter = Task { await slots.acquire() }
        try? await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        let waited = await waiter.value
        #expect(!waited)
        slots.release()
        // The slot is free: the one that was released, not taken by the cancelled waiter.
        let next = await Task { await slots.acquire() }.value
        #expect(next)
    }
}
