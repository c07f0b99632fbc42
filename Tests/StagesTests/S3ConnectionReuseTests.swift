import Foundation
import Testing
import TestFixtures
import Framework
@testable import Stages

/// One upload after another keeps its connection: the S3 sink takes its sessions from
/// the process's shared pool, so a sweep's hundreds of small uploads do not each open
/// a connection (and, over HTTPS, do a TLS handshake). Against a keep-alive server
/// that counts the connections it accepts (Tests/Fixtures/keepalive_s3.py). Run alone
/// (scripts/test's serial phase): the pool is the whole process's, and other tests'
/// uploads would take turns with its sessions.
@Suite struct S3ConnectionReuseTests {
    @Test func uploadsOneAfterAnotherReuseTheirConnection() async throws {
        let server = try PythonFixture(script: "keepalive_s3.py", arguments: [])
        let endpoint = "http://127.0.0.1:\(server.firstLine)"
        let environment = AWSEnvironment(variables: [
            "AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": "/nonexistent",
        ])
        let image = EncodedImage(bytes: SharedBytes(Array("small object".utf8)), format: "bin", mediaType: "application/octet-stream",
                                 width: 1, height: 1)
        for index in 0..<12 {
            var stage = try S3Stage(parameters: parameters(S3Stage.spec, [
                "bucket": .string("reuse"), "key": .string("reuse/\(index).bin"), "endpoint": .string(endpoint),
            ]))
            stage.environment = environment
            _ = try await stage.run(inputs: StageInputs(["input": image]), context: testContext())
        }
        let count = try CurlSession().perform(HTTPRequest(method: "GET", url: endpoint + "/connections"))
        let accepted = Int(String(decoding: count.body, as: UTF8.self)) ?? -1
        // The 12 uploads' (each a HEAD and a PUT), and the count's own request.
        #expect(accepted >= 2 && accepted <= 3, "12 uploads took \(accepted - 1) connections")
        withExtendedLifetime(server) {}
    }
}
