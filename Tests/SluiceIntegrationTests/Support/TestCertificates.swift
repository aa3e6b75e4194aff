import Foundation
import SluiceRedis

/// Certificates made with the `openssl` tool when a test needs them, in a directory of their own:
/// a CA, a server certificate from it for `localhost` and 127.0.0.1, one for another host name, a
/// client certificate from it, and a second CA that signed none of them.
struct TestCertificates {
    let directory: URL

    var caCertificate: String { path("ca.crt") }
    var otherCACertificate: String { path("other-ca.crt") }
    var serverCertificate: String { path("server.crt") }
    var serverKey: String { path("server.key") }
    /// A server certificate from the right CA for `elsewhere.test` only.
    var wrongNameCertificate: String { path("wrong-name.crt") }
    var wrongNameKey: String { path("wrong-name.key") }
    var clientCertificate: String { path("client.crt") }
    var clientKey: String { path("client.key") }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sluice-test-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try makeCA("ca", name: "Sluice Test CA")
        try makeCA("other-ca", name: "Some Other CA")
        try makeCertificate(
            "server", name: "localhost",
            extensions: "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
        try makeCertificate(
            "wrong-name", name: "elsewhere.test",
            extensions: "subjectAltName=DNS:elsewhere.test\nextendedKeyUsage=serverAuth")
        try makeCertificate("client", name: "sluice-worker", extensions: "extendedKeyUsage=clientAuth")
    }

    /// The server's TLS settings with these files.
    func server(authClients: String = "no", wrongName: Bool = false) -> RedisServer.TLS {
        RedisServer.TLS(
            certificateFile: wrongName ? wrongNameCertificate : serverCertificate,
            keyFile: wrongName ? wrongNameKey : serverKey, caCertificateFile: caCertificate, authClients: authClients)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private static let ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    private func makeCA(_ stem: String, name: String) throws {
        try openssl(
            ["req", "-x509"] + Self.ecKey + [
                "-keyout", path("\(stem).key"), "-out", path("\(stem).crt"), "-days", "2", "-subj", "/CN=\(name)",
            ])
    }

    private func makeCertificate(_ stem: String, name: String, extensions: String) throws {
        try openssl(
            ["req"] + Self.ecKey + [
                "-keyout", path("\(stem).key"), "-out", path("\(stem).csr"), "-subj", "/CN=\(name)",
            ])
        try ("basicConstraints=CA:FALSE\n" + extensions + "\n").write(
            toFile: path("\(stem).ext"), atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", path("\(stem).csr"), "-CA", caCertificate, "-CAkey", path("ca.key"),
            "-CAcreateserial", "-out", path("\(stem).crt"), "-days", "2", "-extfile", path("\(stem).ext"),
        ])
    }

    private func openssl(_ arguments: [String]) throws {
        let tool = try RedisServer.which("openssl")
        let status = ChildProcess.reap(try ChildProcess.spawn(tool.path, ["openssl"] + arguments))
        guard status == 0 else {
            throw RedisError(.io, "openssl \(arguments.first ?? "") failed with status \(status)")
        }
    }
}
