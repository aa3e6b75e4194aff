import Foundation
import SluiceRedis

/// Certificates made with the `openssl` tool once per test run, in a directory of their own: a CA,
/// a server certificate from it for `localhost` and 127.0.0.1, one for another host name, a client
/// certificate from it, and a second CA that signed none of them.
struct TestCertificates: Sendable {
    let directory: URL

    /// The run's certificates, made on first use. `openssl` runs without blocking a thread of the
    /// shared cooperative pool (its exit is polled), so other tests running meanwhile are not starved.
    static func shared() async throws -> TestCertificates {
        try await Maker.instance.certificates()
    }

    private actor Maker {
        static let instance = Maker()
        private var made: TestCertificates?

        func certificates() async throws -> TestCertificates {
            if let made { return made }
            let certificates = try await TestCertificates()
            made = certificates
            return certificates
        }
    }

    var caCertificate: String { path("ca.crt") }
    var otherCACertificate: String { path("other-ca.crt") }
    var serverCertificate: String { path("server.crt") }
    var serverKey: String { path("server.key") }
    /// A server certificate from the right CA for `elsewhere.test` only.
    var wrongNameCertificate: String { path("wrong-name.crt") }
    var wrongNameKey: String { path("wrong-name.key") }
    var clientCertificate: String { path("client.crt") }
    var clientKey: String { path("client.key") }

    private init() async throws {
        // sluice-test-* is what scripts/test.sh sweeps after the run.
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sluice-test-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try await makeCA("ca", name: "Sluice Test CA")
        try await makeCA("other-ca", name: "Some Other CA")
        try await makeCertificate(
            "server", name: "localhost",
            extensions: "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
        try await makeCertificate(
            "wrong-name", name: "elsewhere.test",
            extensions: "subjectAltName=DNS:elsewhere.test\nextendedKeyUsage=serverAuth")
        try await makeCertificate("client", name: "sluice-worker", extensions: "extendedKeyUsage=clientAuth")
    }

    /// The server's TLS settings with these files.
    func server(authClients: String = "no", wrongName: Bool = false) -> RedisServer.TLS {
        RedisServer.TLS(
            certificateFile: wrongName ? wrongNameCertificate : serverCertificate,
            keyFile: wrongName ? wrongNameKey : serverKey, caCertificateFile: caCertificate, authClients: authClients)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private static let ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    private func makeCA(_ stem: String, name: String) async throws {
        try await openssl(
            ["req", "-x509"] + Self.ecKey + [
                "-keyout", path("\(stem).key"), "-out", path("\(stem).crt"), "-days", "2", "-subj", "/CN=\(name)",
            ])
    }

    private func makeCertificate(_ stem: String, name: String, extensions: String) async throws {
        try await openssl(
            ["req"] + Self.ecKey + [
                "-keyout", path("\(stem).key"), "-out", path("\(stem).csr"), "-subj", "/CN=\(name)",
            ])
        try ("basicConstraints=CA:FALSE\n" + extensions + "\n").write(
            toFile: path("\(stem).ext"), atomically: true, encoding: .utf8)
        try await openssl([
            "x509", "-req", "-in", path("\(stem).csr"), "-CA", caCertificate, "-CAkey", path("ca.key"),
            "-CAcreateserial", "-out", path("\(stem).crt"), "-days", "2", "-extfile", path("\(stem).ext"),
        ])
    }

    private func openssl(_ arguments: [String]) async throws {
        let tool = try RedisServer.which("openssl")
        let pid = try ChildProcess.spawn(tool.path, ["openssl"] + arguments)
        let status = await WorkerProcess(pid: pid, out: "/dev/null/none").exitStatus()
        guard status == 0 else {
            throw RedisError(.io, "openssl \(arguments.first ?? "") failed with status \(status)")
        }
    }
}
