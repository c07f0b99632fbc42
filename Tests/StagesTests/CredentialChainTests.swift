import Foundation
import Testing
import Framework
import TestFixtures
@testable import Stages

/// The AWS credential chain, with temporary files and fake endpoints on 127.0.0.1.
/// Every environment here disables the real instance metadata address.
@Suite struct CredentialChainTests {
    func chain(_ variables: [String: String]) -> AWSCredentialChain {
        var all = ["HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"]
        all.merge(variables) { _, new in new }
        return AWSCredentialChain(environment: AWSEnvironment(variables: all))
    }

    @Test func environmentComesFirst() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("credentials")
        try "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = s\n".write(to: file, atomically: true, encoding: .utf8)
        let found = try chain(["AWS_ACCESS_KEY_ID": "FROMENV", "AWS_SECRET_ACCESS_KEY": "e", "AWS_SESSION_TOKEN": "t",
                               "AWS_SHARED_CREDENTIALS_FILE": file.path]).resolve()
        #expect(found == AWSCredentials(accessKeyID: "FROMENV", secretAccessKey: "e", sessionToken: "t"))
    }

    @Test func halfSetEnvironmentIsAnError() {
        #expect(throws: AWSCredentialError.self) { try chain(["AWS_ACCESS_KEY_ID": "X"]).resolve() }
    }

    @Test func sharedFilesWithProfiles() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let credentials = directory.appendingPathComponent("credentials")
        let config = directory.appendingPathComponent("config")
        try """
            # comment
            [default]
            aws_access_key_id = DEFAULTKEY
            aws_secret_access_key = default-secret

            [ci]
            aws_access_key_id=CIKEY
            aws_secret_access_key=ci-secret
            aws_session_token = ci-token
            """.write(to: credentials, atomically: true, encoding: .utf8)
        try """
            [profile other]
            aws_access_key_id = OTHERKEY
            aws_secret_access_key = other-secret
            region = eu-central-1
            [default]
            region = us-west-2
            """.write(to: config, atomically: true, encoding: .utf8)
        let files = ["AWS_SHARED_CREDENTIALS_FILE": credentials.path, "AWS_CONFIG_FILE": config.path]
        #expect(try chain(files).resolve().accessKeyID == "DEFAULTKEY")
        #expect(try chain(files.merging(["AWS_PROFILE": "ci"]) { $1 }).resolve() == AWSCredentials(accessKeyID: "CIKEY", secretAccessKey: "ci-secret", sessionToken: "ci-token"))
        // A profile only in the config file ("[profile NAME]" there).
        #expect(try chain(files.merging(["AWS_PROFILE": "other"]) { $1 }).resolve().accessKeyID == "OTHERKEY")
        #expect(AWSEnvironment(variables: files.merging(["AWS_PROFILE": "other"]) { $1 }).region == "eu-central-1")
        #expect(AWSEnvironment(variables: files).region == "us-west-2")
        #expect(AWSEnvironment(variables: files.merging(["AWS_REGION": "ap-south-1"]) { $1 }).region == "ap-south-1")
    }

    /// An endpoint that cannot be reached may answer next time: a transient network
    /// failure, not missing credentials.
    @Test func anUnreachableCredentialsEndpointIsTransient() throws {
        let listener = try S3StallTests.StalledServer()
        listener.stop()  // nothing listens on its port now: connections are refused
        do {
            _ = try chain(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:\(listener.port)/creds"]).resolve()
            Issue.record("credentials from nowhere")
        } catch let error as AWSCredentialError {
            #expect(error.isTransient, "\(error)")
            #expect(PipelineError(error).code == .network && PipelineError(error).isRetryable)
        }
        // Nothing configured at all is not transient.
        do {
            _ = try chain([:]).resolve()
            Issue.record("credentials from nowhere")
        } catch let error as AWSCredentialError {
            #expect(!error.isTransient && PipelineError(error).code == .credentials)
        }
    }

    @Test func containerEndpointWithToken() throws {
        let server = try PythonFixture(script: "fake_metadata.py", arguments: ["3600"], python: "/usr/bin/python3")
        let base = "http://127.0.0.1:\(server.firstLine)"
        let found = try chain(["AWS_CONTAINER_CREDENTIALS_FULL_URI": base + "/container-creds",
                               "AWS_CONTAINER_AUTHORIZATION_TOKEN": "secret-token"]).resolve()
        #expect(found.accessKeyID.hasPrefix("ASIAFAKE"))
        #expect(found.sessionToken == "fake-session-token")
        #expect(found.expiration.map { $0.timeIntervalSinceNow > 3000 } == true)
        // The token can come from a file too; a wrong token is an error, not a silent skip.
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenFile = directory.appendingPathComponent("token")
        try "secret-token\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        #expect(try chain(["AWS_CONTAINER_CREDENTIALS_FULL_URI": base + "/container-creds",
                           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile.path]).resolve().accessKeyID.hasPrefix("ASIAFAKE"))
        do {
            _ = try chain(["AWS_CONTAINER_CREDENTIALS_FULL_URI": base + "/container-creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong"]).resolve()
            Issue.record("accepted a wrong container token")
        } catch let error as AWSCredentialError {
            #expect(error.message.contains("answered HTTP 401"))
        }
    }

    @Test func instanceMetadataWithIMDSv2AndRefresh() throws {
        let server = try PythonFixture(script: "fake_metadata.py", arguments: ["200"], python: "/usr/bin/python3")
        let credentials = AWSCredentialChain(environment: AWSEnvironment(variables: [
            "HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(server.firstLine)",
        ]))
        let first = try credentials.credentials()
        #expect(first.accessKeyID.hasPrefix("ASIAFAKE"))
        #expect(first.sessionToken == "fake-session-token")
        // They expire in 200 s, within the 300 s refresh margin: the next call fetches anew.
        let second = try credentials.credentials()
        #expect(second.accessKeyID != first.accessKeyID)
        // Fresh credentials are served from the cache.
        let longLived = try PythonFixture(script: "fake_metadata.py", arguments: ["3600"], python: "/usr/bin/python3")
        let cached = AWSCredentialChain(environment: AWSEnvironment(variables: [
            "HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(longLived.firstLine)",
        ]))
        #expect(try cached.credentials() == cached.credentials())
    }

    @Test func nothingFoundListsWhereItLooked() {
        do {
            _ = try chain(["AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config"]).resolve()
            Issue.record("found credentials in an empty environment")
        } catch let error as AWSCredentialError {
            #expect(error.message.hasPrefix("no AWS credentials found; looked in:"))
            for place in ["environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: not set",
                          "/nonexistent/credentials: no such file", "/nonexistent/config: no such file",
                          "container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI not set",
                          "EC2 instance metadata: disabled by AWS_EC2_METADATA_DISABLED"] {
                #expect(error.message.contains(place), "\(place)")
            }
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
