import Foundation

/// Base64 text as every API of the server takes it: strict, except that line breaks and blanks
/// are skipped. MIME encoders (coreutils `base64`, Python's `encodebytes`, Java's MIME encoder)
/// wrap lines at 76 columns, and Jobe's PHP decodes the same way.
enum Base64Text {
    /// The bytes of `text`, or nil when it is not base64 once blanks are left out.
    static func decode(_ text: String) -> Data? {
        if let data = Data(base64Encoded: text) { return data }
        let isBlank: (UInt8) -> Bool = { $0 == 0x0A || $0 == 0x0D || $0 == 0x20 || $0 == 0x09 }
        guard text.utf8.contains(where: isBlank) else { return nil }
        return Data(base64Encoded: String(decoding: text.utf8.filter { !isBlank($0) }, as: UTF8.self))
    }
}
