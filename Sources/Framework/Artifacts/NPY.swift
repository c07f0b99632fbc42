import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// NumPy's `.npy` format for grids: the one place the project reads and writes it.
///
/// Writes version 1.0 (little-endian, C order, 2-D shape `(height, width)`, header
/// padded to 64 bytes) so `numpy.load` opens it. Reads versions 1.0, 2.0 and 3.0 with
/// the same restrictions, and refuses anything else with a message that says what.
public enum NPY {
    public struct FormatError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    static func descriptor(_ type: ElementType) -> String {
        switch type {
        case .uint8: "|u1"
        case .uint16: "<u2"
        case .uint32: "<u4"
        case .float32: "<f4"
        case .float64: "<f8"
        }
    }

    static func elementType(descriptor: String) -> ElementType? {
        switch descriptor {
        case "|u1", "<u1", "u1", "=u1": .uint8
        case "<u2": .uint16
        case "<u4": .uint32
        case "<f4": .float32
        case "<f8": .float64
        default: nil
        }
    }

    /// The `.npy` header for a grid.
    public static func header(elementType: ElementType, width: Int, height: Int) -> [UInt8] {
        var dictionary = "{'descr': '\(descriptor(elementType))', 'fortran_order': False, 'shape': (\(height), \(width)), }"
        let unpadded = magic.count + 2 + 2 + dictionary.utf8.count + 1
        dictionary += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let length = UInt16(dictionary.utf8.count)
        return magic + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(dictionary.utf8)
    }

    /// A grid as `.npy` bytes.
    public static func data(_ grid: any AnyGrid) throws -> Data {
        var data = Data(header(elementType: grid.elementType, width: grid.width, height: grid.height))
        try withRawBytes(of: grid) { data.append(contentsOf: $0) }
        return data
    }

    /// Writes any grid to `path`.
    public static func write(_ grid: any AnyGrid, to path: String) throws {
        let header = header(elementType: grid.elementType, width: grid.width, height: grid.height)
        try AtomicFile.write(to: path, overwrite: true) { descriptor, temporary in
            try header.withUnsafeBytes { try writeAll(descriptor, $0, path: temporary) }
            try withRawBytes(of: grid) { try writeAll(descriptor, $0, path: temporary) }
        }
    }

    private static func writeAll(_ descriptor: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < buffer.count {
            let written = Glibc.write(descriptor, buffer.baseAddress! + offset, min(buffer.count - offset, 1 << 30))
            if written < 0 && errno == EINTR { continue }
            if written < 0 { throw SystemError("write", path: path) }
            offset += written
        }
    }

    /// The shape and type a file declares, and where its data starts.
    public struct Layout: Sendable, Hashable {
        public var elementType: ElementType
        public var width: Int
        public var height: Int
        public var dataOffset: Int
    }

    /// Parses and checks the header of `.npy` bytes.
    public static func layout(of bytes: UnsafeRawBufferPointer, name: String) throws -> Layout {
        try layout(ofPrefix: bytes, totalSize: bytes.count, name: name)
    }

    /// Parses the header at the start of a `.npy` file of `totalSize` bytes, given
    /// its first bytes (at least the header), and checks the data size it claims
    /// against the file's, with overflow checks: a shape from outside is never trusted.
    public static func layout(ofPrefix bytes: UnsafeRawBufferPointer, totalSize: Int, name: String) throws -> Layout {
        func fail(_ message: String) -> FormatError { FormatError(message: "\(name): \(message)") }
        guard bytes.count >= 10, Array(bytes.prefix(6)) == magic else { throw fail("not a .npy file (no \\x93NUMPY magic)") }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("unsupported .npy version \(major).\(bytes[7])")
        }
        guard bytes.count >= headerStart + headerLength else {
            guard totalSize >= headerStart + headerLength else { throw fail("truncated header") }
            // The caller gave a prefix shorter than the header: it reads more and asks again.
            return Layout(elementType: .uint8, width: 0, height: 0, dataOffset: headerStart + headerLength)
        }
        let header = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[headerStart..<(headerStart + headerLength)]), as: UTF8.self)
        guard let descr = field("descr", in: header).map({ $0.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")) }) else {
            throw fail("header has no 'descr'")
        }
        guard let type = elementType(descriptor: descr) else {
            throw fail("dtype '\(descr)' is not supported; use uint8, uint16, uint32, float32 or float64 (little-endian)")
        }
        if field("fortran_order", in: header) != "False" {
            throw fail("Fortran-ordered arrays are not supported; save a C-ordered array (numpy.ascontiguousarray)")
        }
        guard let shapeText = field("shape", in: header) else { throw fail("header has no 'shape'") }
        let dimensions = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "()")).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard dimensions.count == 2, let height = Int(dimensions[0]), let width = Int(dimensions[1]), height >= 0, width >= 0 else {
            throw fail("shape \(shapeText) is not a 2-D (height, width) shape")
        }
        let layout = Layout(elementType: type, width: width, height: height, dataOffset: headerStart + headerLength)
        let found = totalSize - layout.dataOffset
        let (count, overflow1) = width.multipliedReportingOverflow(by: height)
        let (expected, overflow2) = count.multipliedReportingOverflow(by: type.byteWidth)
        guard !overflow1, !overflow2 else {
            let claimed = Double(width) * Double(height) * Double(type.byteWidth)
            throw fail("shape (\(height), \(width)) of \(type.rawValue) claims \(ByteCountFormatting.string(claimed)) of data, "
                + "but the file has \(ByteCountFormatting.string(found))")
        }
        guard found == expected else {
            throw fail(found < expected ? "truncated: \(height)x\(width) \(type.rawValue) needs \(expected) bytes of data, found \(found)"
                                        : "\(found - expected) bytes of extra data after the \(height)x\(width) \(type.rawValue) array")
        }
        return layout
    }

    /// Reads a grid from `.npy` bytes.
    public static func read(_ bytes: UnsafeRawBufferPointer, name: String) throws -> any AnyGrid {
        let layout = try layout(of: bytes, name: name)
        let data = UnsafeRawBufferPointer(rebasing: bytes[layout.dataOffset...])
        return try makeGrid(layout) { $0.copyMemory(from: data) }
    }

    /// A grid of `layout`'s type and shape whose bytes `fill` writes.
    private static func makeGrid(_ layout: Layout, fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> any AnyGrid {
        func make<T: GridElement>(_: T.Type) throws -> Grid<T> {
            try Grid<T>(width: layout.width, height: layout.height) { try fill(UnsafeMutableRawBufferPointer($0)) }
        }
        switch layout.elementType {
        case .uint8: return try make(UInt8.self)
        case .uint16: return try make(UInt16.self)
        case .uint32: return try make(UInt32.self)
        case .float32: return try make(Float.self)
        case .float64: return try make(Double.self)
        }
    }

    /// Reads a `.npy` file: the header first, then the data straight into the
    /// grid's memory (no copy of the file, and an allocation that fails is an error).
    public static func read(contentsOf path: String, name: String? = nil) throws -> any AnyGrid {
        let name = name ?? path
        let descriptor = try FileContents.open(path)
        defer { close(descriptor) }
        let size = try FileContents.size(of: descriptor, path: path)
        var prefix = [UInt8](repeating: 0, count: min(size, 1 << 16))
        try prefix.withUnsafeMutableBytes { try FileContents.readFully(descriptor, into: $0, at: 0, path: path) }
        var layout = try prefix.withUnsafeBytes { try self.layout(ofPrefix: $0, totalSize: size, name: name) }
        if layout.dataOffset > prefix.count {  // a header longer than 64 KiB: read it whole
            prefix = [UInt8](repeating: 0, count: layout.dataOffset)
            try prefix.withUnsafeMutableBytes { try FileContents.readFully(descriptor, into: $0, at: 0, path: path) }
            layout = try prefix.withUnsafeBytes { try self.layout(ofPrefix: $0, totalSize: size, name: name) }
        }
        let offset = layout.dataOffset
        return try makeGrid(layout) { try FileContents.readFully(descriptor, into: $0, at: offset, path: path) }
    }

    /// The value of `'key': value` in a header dictionary (to the next `,` outside
    /// parentheses).
    static func field(_ key: String, in header: String) -> String? {
        guard let range = header.range(of: "'\(key)':") ?? header.range(of: "\"\(key)\":") else { return nil }
        var depth = 0
        var value = ""
        for character in header[range.upperBound...] {
            if character == "(" { depth += 1 }
            if character == ")" { depth -= 1 }
            if (character == "," || character == "}") && depth == 0 { break }
            value.append(character)
        }
        return value.trimmingCharacters(in: .whitespaces)
    }

    private static func withRawBytes<R>(of grid: any AnyGrid, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch grid {
        case let g as Grid<UInt8>: try g.materialize(); return try g.withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) }
        case let g as Grid<UInt16>: try g.materialize(); return try g.withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) }
        case let g as Grid<UInt32>: try g.materialize(); return try g.withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) }
        case let g as Grid<Float>: try g.materialize(); return try g.withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) }
        case let g as Grid<Double>: try g.materialize(); return try g.withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) }
        default: throw FormatError(message: "unsupported grid type \(grid.artifactType)")
        }
    }
}
