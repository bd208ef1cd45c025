import ArgumentParser
import Foundation
import HTTPCore
import JobStore
import Logging
import Testing

@testable import SandboxServer

@Suite struct HMACTests {
    @Test func sha256KnownAnswers() {
        #expect(HMACSHA256.hex(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(HMACSHA256.hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(HMACSHA256.hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(HMACSHA256.hex(SHA256.hash([UInt8](repeating: 0x61, count: 1_000_000)))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// RFC 4231 test cases 1–4, 6 and 7 (case 5 truncates the tag).
    @Test(arguments: [
        ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (Array(1...25), [UInt8](repeating: 0xcd, count: 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        ([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ([UInt8](repeating: 0xaa, count: 131),
         Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ])
    func hmacRFC4231(key: [UInt8], message: [UInt8], expected: String) {
        #expect(HMACSHA256.hex(HMACSHA256.authenticationCode(for: message, key: key)) == expected)
    }

    @Test func signatureCoversTimestampAndBody() {
        let signer = WebhookSigner(secret: Array("k".utf8))
        let signature = signer.signature(body: Array("{}".utf8), timestamp: 100)
        #expect(signature == "sha256=" + HMACSHA256.hex(HMACSHA256.authenticationCode(for: Array("100.{}".utf8), key: Array("k".utf8))))
        #expect(signer.verify(signature: signature, body: Array("{}".utf8), timestamp: 100))
        #expect(!signer.verify(signature: signature, body: Array("{}".utf8), timestamp: 101))
    }
}

@Suite struct WebhookPolicyTests {
    @Test(arguments: ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                      "0.0.0.0", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1"])
    func nonPublicAddresses(_ text: String) throws {
        #expect(try #require(IPAddress(text)).isNonPublic)
    }

    @Test(arguments: ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"])
    func publicAddresses(_ text: String) throws {
        #expect(try !#require(IPAddress(text)).isNonPublic)
    }

    @Test func allowListByRangeAndHost() throws {
        let policy = WebhookPolicy(allow: ["127.0.0.1/32", "hooks.internal", "10.0.0.0/8"])
        #expect(policy.problem(with: URL(string: "http://127.0.0.1:9/x")!) == nil)
        #expect(policy.problem(with: URL(string: "http://10.9.9.9/x")!) == nil)
        #expect(policy.problem(with: URL(string: "http://hooks.internal/x")!) == nil)
        #expect(policy.problem(with: URL(string: "http://127.0.0.2/x")!) != nil)
        #expect(policy.problem(with: URL(string: "http://[::1]/x")!) != nil)
        #expect(policy.problem(with: URL(string: "ftp://8.8.8.8/x")!) != nil)
        let strict = WebhookPolicy(allow: [])
        #expect(strict.problem(with: URL(string: "http://localhost/x")!)?.contains("loopback") == true)
        #expect(strict.literalProblem(with: URL(string: "http://192.168.0.1/")!) != nil)
        #expect(strict.literalProblem(with: URL(string: "http://example.com/")!) == nil, "names are checked when sending")
    }
}

@Suite struct ServerSettingsTests {
    @Test func flagBeatsEnvironmentBeatsFileBeatsDefault() throws {
        let file = Data(#"{"port": 3000, "workers": 3, "max-queue": 7, "api-keys": ["a:admin", "u:user"], "allow-network": true}"#.utf8)
        let resolution = try ServerSettings.resolve(
            arguments: ["--port", "4000", "--config", "/etc/x.json"],
            environment: ["SANDBOX_SERVER_PORT": "5000", "SANDBOX_SERVER_WORKERS": "5", "UNRELATED": "1"],
            readFile: { path in
                #expect(path == "/etc/x.json")
                return file
            })
        let (settings, sources) = (resolution.settings, resolution.sources)
        #expect(settings.port == 4000)
        #expect(sources["port"] == .flag)
        #expect(settings.workers == 5)
        #expect(sources["workers"] == .environment)
        #expect(settings.maxQueuedJobs == 7)
        #expect(sources["max-queue"] == .file)
        #expect(settings.apiKeys == [APIKey(key: "a", role: .admin), APIKey(key: "u", role: .user)])
        #expect(settings.allowNetwork)
        #expect(settings.host == "127.0.0.1")
        #expect(sources["host"] == .default)
    }

    @Test func equalsFormSwitchesAndErrors() throws {
        let settings = try ServerSettings.resolve(arguments: ["--host=0.0.0.0", "--allow-network", "--data-dir", "/d"], environment: [:]).settings
        #expect(settings.host == "0.0.0.0")
        #expect(settings.allowNetwork)
        #expect(settings.dataDirectory == "/d")
        #expect(throws: ServerSettings.SettingError.self) { try ServerSettings.resolve(arguments: ["--portt", "1"], environment: [:]) }
        do {
            _ = try ServerSettings.resolve(arguments: ["--portt", "1"], environment: [:])
        } catch {
            #expect(error.description.contains("did you mean --port"))
        }
        do {
            _ = try ServerSettings.resolve(arguments: [], environment: ["SANDBOX_SERVER_PORT": "http"])
            Issue.record("a non-numeric port must be refused")
        } catch {
            #expect(error.description.contains("SANDBOX_SERVER_PORT"))
        }
        #expect(throws: ServerSettings.SettingError.self) {
            try ServerSettings.resolve(arguments: ["--api-keys", "k:root"], environment: [:])
        }
        #expect(throws: ServerSettings.SettingError.self) {
            try ServerSettings.resolve(arguments: ["--config", "c"], environment: [:], readFile: { _ in Data(#"{"prot": 1}"#.utf8) })
        }
    }

    @Test func helpAndTableDocumentEverySetting() {
        for definition in ServerSettings.definitions {
            #expect(ServerSettings.helpText.contains(definition.flag))
            #expect(ServerSettings.helpText.contains(definition.environmentVariable))
            #expect(ServerSettings.markdownTable.contains("`\(definition.name)`"))
        }
        #expect(Set(ServerSettings.definitions.map(\.name)).count == ServerSettings.definitions.count)
        #expect(ServeCommand.helpMessage().contains("SANDBOX_SERVER_WEBHOOK_SECRET"))
    }
}

/// Every route the router serves is described in openapi.yaml, and every described operation is served.
@Suite struct RouteTableMatchesOpenAPITests {
    @Test func routeTableEqualsDocumentedOperations() throws {
        let directory = NSTemporaryDirectory() + "routes-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteJobStore(path: directory + "/jobs.sqlite3")
        let service = JobService(store: store, validator: JobRequestValidator(registry: try LanguageRegistry.embedded(), limits: .standard))
        let routes = APIRoutes(service: service, authenticator: Authenticator(keys: []), serverInfo: .init(
            version: "test", languages: [], limits: .standard, features: [], sandboxProblem: { nil }))
        let served = Set(routes.makeRouter().routeTable.map { "\($0.method.rawValue) \($0.pattern)" })

        let outline = OpenAPIOutline(try String(contentsOf: repositoryRoot.appendingPathComponent("openapi.yaml"), encoding: .utf8))
        let methods = Set(HTTPMethod.allCases.map { $0.rawValue.lowercased() })
        var documented: Set<String> = []
        for path in outline.keys(under: ["paths"]) {
            for key in outline.keys(under: ["paths", path]) where methods.contains(key) {
                documented.insert("\(key.uppercased()) \(path)")
            }
        }
        #expect(served == documented, "served but undocumented: \(served.subtracting(documented)); documented but not served: \(documented.subtracting(served))")
    }
}

@Suite struct ServiceDocumentationTests {
    /// docs/service.md and the README carry the table generated from the settings definitions, verbatim.
    @Test(arguments: ["docs/service.md", "README.md"])
    func configurationTableIsCurrent(_ file: String) throws {
        let document = try String(contentsOf: repositoryRoot.appendingPathComponent(file), encoding: .utf8)
        #expect(document.contains(ServerSettings.markdownTable), "replace the table in \(file) with:\n\(ServerSettings.markdownTable)")
    }
}

@Suite struct FinishedJobCacheTests {
    func rendered(_ id: String) -> RenderedJob {
        let view = JobView(id: id, state: .finished, language: "bash", maxScore: 1, createdAt: Date(timeIntervalSince1970: 0))
        return RenderedJob(view: view, json: view.jsonBytes)
    }

    /// A runner caching a job a client has just deleted must not bring it back.
    @Test func aDeletedJobIsNotCachedAgain() {
        let cache = FinishedJobCache(capacity: 3)
        cache.insert(rendered("a"))
        cache.removeDeleted("a")
        #expect(cache["a"] == nil)
        cache.insert(rendered("a"))
        #expect(cache["a"] == nil, "the late caching of a deleted job is ignored")
        cache.insert(rendered("b"))
        #expect(cache["b"]?.view.id == "b")
        // Tombstones are bounded like the entries: the oldest go first.
        for id in ["c", "d", "e"] { cache.removeDeleted(id) }
        cache.insert(rendered("a"))
        #expect(cache["a"]?.view.id == "a", "the oldest tombstone was forgotten")
        cache.insert(rendered("e"))
        #expect(cache["e"] == nil)
    }
}
