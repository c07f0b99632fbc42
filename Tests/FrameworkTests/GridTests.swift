import Testing
import Framework

@Suite struct DictionaryEncodedGridTests {
    func indices(_ values: [UInt8], width: Int) throws -> Grid<UInt8> {
        try Grid<UInt8>(width: width, height: values.count / width, values: values)
    }

    @Test func elementsAreTableEntriesOfTheIndices() throws {
        let table = (0..<256).map { Double($0) * 0.5 - 3 }
        let grid = Grid<Double>(indices: try indices([4, 0, 255, 9, 9, 1], width: 3), table: table)
        #expect(grid.width == 3 && grid.height == 2 && grid.count == 6)
        #expect(grid[0, 0] == -1 && grid[2, 0] == 124.5 && grid[1, 1] == 1.5)
        #expect(grid.elements == [-1, -3, 124.5, 1.5, 1.5, -2.5])
        grid.withUnsafeBufferPointer { buffer in
            #expect(Array(buffer) == [-1, -3, 124.5, 1.5, 1.5, -2.5])
        }
    }

    @Test func decodedOnceAndShared() throws {
        let grid = Grid<Float>(indices: try indices([1, 2, 3, 4], width: 2), table: (0..<256).map { Float($0) })
        let first = grid.withUnsafeBufferPointer { $0.baseAddress }
        let second = grid.withUnsafeBufferPointer { $0.baseAddress }
        #expect(first == second)
    }

    /// The range comes from the table and the indices that occur, whatever the
    /// table's shape, and equals a scan of the decoded elements.
    @Test(arguments: ["increasing", "decreasing", "zigzag", "nan"])
    func rangeEqualsAScanOfTheElements(shape: String) throws {
        let table: [Float] = (0..<256).map { i in
            switch shape {
            case "increasing": Float(i) / 255
            case "decreasing": 1 - Float(i) / 255
            case "zigzag": Float((i * 37) % 101)
            default: i == 6 ? .nan : Float(i % 5)
            }
        }
        let values: [UInt8] = [3, 9, 6, 4, 200, 7, 6, 5]
        let grid = Grid<Float>(indices: try indices(values, width: 4), table: table)
        let dense = try Grid<Float>(width: 4, height: 2, values: values.map { table[Int($0)] })
        let expected = try #require(dense.range())
        let got = try #require(grid.range())
        #expect(got.min == expected.min && got.max == expected.max)
        #expect(grid.valueRange()?.min == Double(expected.min) && grid.valueRange()?.max == Double(expected.max))
    }

    @Test func allNaNHasNoRange() throws {
        let grid = Grid<Float>(indices: try indices([1, 1], width: 2), table: Array(repeating: .nan, count: 256))
        #expect(grid.range() == nil)
        #expect(grid.valueRange() == nil)
    }

    @Test func summaryReportsTheDecodedShape() throws {
        let grid = Grid<Float>(indices: try indices([0, 255], width: 1), table: (0..<256).map { Float($0) / 255 })
        let summary = grid.summary()
        #expect(summary.type == "Grid<Float32>" && summary.width == 1 && summary.height == 2)
        #expect(summary.byteCount == 8 && summary.min == 0 && summary.max == 1)
        #expect(summary.encoding == "dictionary")
        #expect(summary.shortDescription == "Grid<Float32> 1x2 8 B (dictionary-encoded)")
        #expect(try Grid<Float>(width: 1, height: 1, values: [0]).summary().encoding == nil)
    }
}
