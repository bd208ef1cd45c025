import Foundation

/// An IPv4 or IPv6 address as its network-order bytes (4 or 16).
struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    let bytes: [UInt8]

    /// Parses a literal address (`10.0.0.1`, `::1`, `[::1]`); nil for anything else.
    init?(_ text: String) {
        var literal = text
        if literal.hasPrefix("["), literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, literal, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count))
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`).
    var unmappedIPv4: IPAddress? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff else { return nil }
        return IPAddress(bytes: Array(bytes[12..<16]))
    }

    /// Whether the address is reachable only inside this host or a private network: loopback,
    /// RFC 1918, carrier-grade NAT, link-local (cloud metadata at 169.254.169.254), unspecified,
    /// multicast, reserved, IPv6 unique-local and link-local.
    var isNonPublic: Bool {
        if let v4 = unmappedIPv4 { return v4.isNonPublic }
        let blocked = bytes.count == 4 ? Self.nonPublicIPv4 : Self.nonPublicIPv6
        return blocked.contains { $0.contains(self) }
    }

    private static let nonPublicIPv4: [AddressRange] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    ].compactMap(AddressRange.init)
    private static let nonPublicIPv6: [AddressRange] = [
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "64:ff9b::/96", "2001:db8::/32",
    ].compactMap(AddressRange.init)
}

/// An address range in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a /32 or /128.
struct AddressRange: Sendable, Hashable {
    let network: IPAddress
    let prefixLength: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let address = IPAddress(parts[0]) else { return nil }
        let maximum = address.bytes.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...maximum).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = maximum
        }
        network = address
    }

    func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == network.bytes.count else { return false }
        var remaining = prefixLength
        for index in network.bytes.indices where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if address.bytes[index] & mask != network.bytes[index] & mask { return false }
            remaining -= bits
        }
        return true
    }
}

/// One `webhook-allow` entry: a host name (matched exactly, case-insensitively) or an address range.
enum AddressRule: Sendable, Hashable {
    case host(String)
    case range(AddressRange)

    init?(_ text: String) {
        if let range = AddressRange(text) {
            self = .range(range)
        } else if !text.isEmpty, text.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) }) {
            self = .host(text.lowercased())
        } else {
            return nil
        }
    }
}

/// Decides which callback URLs the server may call (SSRF protection): a URL whose host resolves
/// to any loopback or private address is refused unless the host or address is allow-listed.
struct WebhookPolicy: Sendable {
    let rules: [AddressRule]

    init(allow: [String]) { rules = allow.compactMap(AddressRule.init) }

    /// Why a URL is refused, or nil when it may be called. Resolves the host name (blocking);
    /// every address it resolves to must be acceptable, so a name that also points inside fails.
    func problem(with url: URL) -> String? {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            return "only http and https callbacks are allowed"
        }
        guard let host = url.host?.lowercased(), !host.isEmpty else { return "the callback URL has no host" }
        if rules.contains(.host(host)) { return nil }
        let addresses: [IPAddress]
        if let literal = IPAddress(host) {
            addresses = [literal]
        } else {
            addresses = Self.resolve(host)
            if addresses.isEmpty { return "the host \(host) does not resolve" }
        }
        for address in addresses where address.isNonPublic && !allowed(address) {
            return "\(host) resolves to \(address), a loopback or private address; add it to webhook-allow to permit it"
        }
        return nil
    }

    /// The quick check done at submission: a literal non-public address that is not allowed is
    /// refused at once (host names are resolved when the webhook is sent).
    func literalProblem(with url: URL) -> String? {
        guard let host = url.host?.lowercased(), let address = IPAddress(host) else { return nil }
        if rules.contains(.host(host)) { return nil }
        return address.isNonPublic && !allowed(address)
            ? "\(address) is a loopback or private address; callbacks there must be allowed with webhook-allow" : nil
    }

    private func allowed(_ address: IPAddress) -> Bool {
        let candidates = [address] + (address.unmappedIPv4.map { [$0] } ?? [])
        return rules.contains { rule in
            guard case .range(let range) = rule else { return false }
            return candidates.contains { range.contains($0) }
        }
    }

    /// Every address of `host` (getaddrinfo).
    static func resolve(_ host: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let address = entry.pointee.ai_addr {
                switch Int32(address.pointee.sa_family) {
                case AF_INET:
                    address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                        var raw = v4.pointee.sin_addr
                        addresses.append(IPAddress(bytes: withUnsafeBytes(of: &raw) { Array($0) }))
                    }
                case AF_INET6:
                    address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                        var raw = v6.pointee.sin6_addr
                        addresses.append(IPAddress(bytes: withUnsafeBytes(of: &raw) { Array($0) }))
                    }
                default: break
                }
            }
            cursor = entry.pointee.ai_next
        }
        return addresses
    }
}

/// Signs webhook bodies: `X-Sandbox-Signature: sha256=HEX(HMAC-SHA256(secret, "TIMESTAMP.BODY"))`
/// with `X-Sandbox-Timestamp: TIMESTAMP` (Unix seconds), so a receiver can reject both forged and
/// replayed requests.
struct WebhookSigner: Sendable {
    let secret: [UInt8]

    static let signatureHeader = "X-Sandbox-Signature"
    static let timestampHeader = "X-Sandbox-Timestamp"

    func signature(body: [UInt8], timestamp: Int64) -> String {
        "sha256=" + HMACSHA256.hex(HMACSHA256.authenticationCode(for: Array("\(timestamp).".utf8) + body, key: secret))
    }

    /// Whether `signature` is this signer's for `body` at `timestamp` (what a receiver checks).
    func verify(signature: String, body: [UInt8], timestamp: Int64) -> Bool {
        HMACSHA256.constantTimeEquals(Array(self.signature(body: body, timestamp: timestamp).utf8), Array(signature.utf8))
    }
}
