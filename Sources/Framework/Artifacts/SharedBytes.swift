import Foundation

/// Immutable bytes in one allocation, shared by reference and never copied by the
/// framework: an encoder's output buffer becomes an artifact as it is.
public final class SharedBytes: RandomAccessCollection, @unchecked Sendable {
    private let base: UnsafeRawBufferPointer
    private let deallocate: @Sendable (UnsafeMutableRawPointer) -> Void

    /// Takes ownership of `count` bytes at `pointer`; `deallocate` frees them when the
    /// last reference goes.
    public init(takingOwnershipOf pointer: UnsafeMutableRawPointer, count: Int,
                deallocate: @escaping @Sendable (UnsafeMutableRawPointer) -> Void) {
        self.base = UnsafeRawBufferPointer(start: pointer, count: count)
        self.deallocate = deallocate
    }

    /// A copy of `bytes`.
    public convenience init(_ bytes: some Collection<UInt8>) {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(1, bytes.count), alignment: 16)
        _ = UnsafeMutableRawBufferPointer(start: pointer, count: bytes.count).initializeMemory(as: UInt8.self, from: bytes)
        self.init(takingOwnershipOf: pointer, count: bytes.count) { $0.deallocate() }
    }

    /// `count` uninitialised bytes from `malloc`, to be filled once through
    /// `withUnsafeMutableBytes` before the value is shared. Throws an
    /// `AllocationError` naming `purpose` when the memory cannot be had.
    public static func allocate(count: Int, purpose: @autoclosure () -> String) throws(AllocationError) -> SharedBytes {
        guard count >= 0, let pointer = malloc(Swift.max(1, count)) else {
            throw AllocationError(byteCount: Double(count), purpose: purpose())
        }
        return SharedBytes(takingOwnershipOf: pointer, count: count) { free($0) }
    }

    /// The bytes, writable: only while the value is being made, before it is shared.
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(mutating: base))
    }

    deinit {
        if let pointer = base.baseAddress { deallocate(UnsafeMutableRawPointer(mutating: pointer)) }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { base.count }

    public subscript(position: Int) -> UInt8 {
        base[position]
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(base)
    }
}
