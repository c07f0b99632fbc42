import Crypto
import Foundation
import Testing
@testable import Stages

/// The signer against the examples in the S3 documentation ("Signature
/// Calculations for the Authorization Header: Transferring Payload in a Single
/// Chunk"), whose expected signatures AWS publishes, and against encodings worked
/// out by hand for awkward keys.
@Suite struct SigV4Tests {
    let credentials = AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    let date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    let host = "examplebucket.s3.amazonaws.com"

    func check(_ request: SigV4.Request, stringToSignHash: String, signature: String, signedHeaders: String,
               sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let toSign = SigV4.stringToSign(request, timestamp: "20130524T000000Z", scope: "20130524/us-east-1/s3/aws4_request")
        #expect(toSign.split(separator: "\n").last.map(String.init) == stringToSignHash, sourceLocation: sourceLocation)
        let authorization = SigV4.authorization(request, credentials: credentials, region: "us-east-1", date: date)
        #expect(authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            + "SignedHeaders=\(signedHeaders),Signature=\(signature)", sourceLocation: sourceLocation)
    }

    @Test func getObject() {
        let request = SigV4.Request(method: "GET", host: host, path: "/test.txt", headers: [
            ("Range", "bytes=0-9"), ("x-amz-content-sha256", SigV4.emptyPayloadHash), ("x-amz-date", "20130524T000000Z"),
        ], payloadHash: SigV4.emptyPayloadHash)
        check(request, stringToSignHash: "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
              signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
              signedHeaders: "host;range;x-amz-content-sha256;x-amz-date")
    }

    @Test func putObject() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let hash = body.withUnsafeBytes { SigV4.payloadHash($0) }
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let request = SigV4.Request(method: "PUT", host: host, path: "/test$file.text", headers: [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("x-amz-content-sha256", hash),
        ], payloadHash: hash)
        #expect(request.canonicalPath == "/test%24file.text")
        check(request, stringToSignHash: "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
              signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
              signedHeaders: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class")
    }

    @Test func getBucketLifecycle() {
        let request = SigV4.Request(method: "GET", host: host, path: "/", query: [("lifecycle", "")], headers: [
            ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", SigV4.emptyPayloadHash),
        ], payloadHash: SigV4.emptyPayloadHash)
        #expect(request.canonicalQuery == "lifecycle=")
        check(request, stringToSignHash: "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
              signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
              signedHeaders: "host;x-amz-content-sha256;x-amz-date")
    }

    @Test func listObjects() {
        // Given out of order: the canonical query sorts them.
        let request = SigV4.Request(method: "GET", host: host, path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: [
            ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", SigV4.emptyPayloadHash),
        ], payloadHash: SigV4.emptyPayloadHash)
        #expect(request.canonicalQuery == "max-keys=2&prefix=J")
        check(request, stringToSignHash: "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
              signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
              signedHeaders: "host;x-amz-content-sha256;x-amz-date")
    }

    @Test func awkwardKeysAreEncodedByteByByte() {
        #expect(SigV4.uriEncode("a b+c%d=e&f(g)h:i@j~k") == "a%20b%2Bc%25d%3De%26f%28g%29h%3Ai%40j~k")
        #expect(SigV4.uriEncode("é") == "%C3%A9")
        #expect(SigV4.uriEncode("😀") == "%F0%9F%98%80")
        #expect(SigV4.uriEncode("A-Z_a.z~09") == "A-Z_a.z~09")
        let request = SigV4.Request(method: "PUT", host: "h", path: "/bucket/dir one/ünï+code 😀.jpg", payloadHash: SigV4.emptyPayloadHash)
        #expect(request.canonicalPath == "/bucket/dir%20one/%C3%BCn%C3%AF%2Bcode%20%F0%9F%98%80.jpg")
    }

    @Test func queryKeysAndValuesAreEncodedAndSorted() {
        let request = SigV4.Request(method: "POST", host: "h", path: "/b/k",
                                    query: [("uploadId", "a/b+c="), ("uploads", ""), ("partNumber", "2"), ("a", "2"), ("a", "1")],
                                    payloadHash: SigV4.emptyPayloadHash)
        #expect(request.canonicalQuery == "a=1&a=2&partNumber=2&uploadId=a%2Fb%2Bc%3D&uploads=")
    }

    @Test func signAddsDateContentHashTokenAndSignsThem() {
        let temporary = AWSCredentials(accessKeyID: "ASIAEXAMPLE", secretAccessKey: "secret", sessionToken: "token/with+chars")
        let payload = "c0535e4be2b79ffd93291305436bf889314e4a3faec05ecffcbb7df31ad9e51a"
        let headers = SigV4.sign(SigV4.Request(method: "PUT", host: "127.0.0.1:9000", path: "/b/k", headers: [("Content-Type", "image/jpeg")],
                                               payloadHash: payload), credentials: temporary, region: "eu-west-1", date: date)
        let names = headers.map { $0.name.lowercased() }
        #expect(names.contains("x-amz-date") && names.contains("x-amz-content-sha256") && names.contains("x-amz-security-token"))
        #expect(headers.first { $0.name == "x-amz-content-sha256" }?.value == payload)
        let authorization = headers.first { $0.name == "Authorization" }?.value ?? ""
        #expect(authorization.contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"))
        #expect(authorization.contains("/20130524/eu-west-1/s3/aws4_request"))
        // A different payload hash, date or secret changes the signature.
        let other = SigV4.sign(SigV4.Request(method: "PUT", host: "127.0.0.1:9000", path: "/b/k", headers: [("Content-Type", "image/jpeg")],
                                             payloadHash: SigV4.emptyPayloadHash), credentials: temporary, region: "eu-west-1", date: date)
        #expect(other.first { $0.name == "Authorization" }?.value != authorization)
        let later = SigV4.sign(SigV4.Request(method: "PUT", host: "127.0.0.1:9000", path: "/b/k", headers: [("Content-Type", "image/jpeg")],
                                             payloadHash: payload), credentials: temporary, region: "eu-west-1", date: date + 1)
        #expect(later.first { $0.name == "x-amz-date" }?.value == "20130524T000001Z")
        #expect(later.first { $0.name == "Authorization" }?.value != authorization)
    }

    @Test func credentialsNeverPrintTheirSecrets() {
        let secret = AWSCredentials(accessKeyID: "AKIA1", secretAccessKey: "TOPSECRET", sessionToken: "TOKENSECRET")
        let text = "\(secret) \(String(reflecting: secret))"
        #expect(!text.contains("TOPSECRET") && !text.contains("TOKENSECRET"))
        #expect(text.contains("AKIA1"))
    }
}
