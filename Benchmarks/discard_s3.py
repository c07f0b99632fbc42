"""An S3-shaped server on 127.0.0.1 that reads request bodies and throws them away:
the floor for an upload. Answers PutObject, CreateMultipartUpload, UploadPart and
CompleteMultipartUpload just enough for a client to finish (ETags are not MD5s, so
clients that check MD5-shaped ETags skip the check). Prints its port; stops when
stdin closes.
"""
import http.server
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures"))
from loopback import serve_until_stdin_closes  # noqa: E402


class Discard(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def drain(self):
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 4 << 20))
            if not chunk:
                break
            remaining -= len(chunk)

    def answer(self, body=b"", etag=None):
        self.send_response(200)
        if etag:
            self.send_header("ETag", f'"{etag}"')
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        self.drain()
        self.answer(etag="discarded")

    def do_POST(self):
        self.drain()
        if self.path.endswith("?uploads") or "?uploads=" in self.path or "&uploads" in self.path:
            self.answer(f"<InitiateMultipartUploadResult><UploadId>{uuid.uuid4().hex}</UploadId></InitiateMultipartUploadResult>".encode())
        else:
            self.answer(b"<CompleteMultipartUploadResult><ETag>&quot;discarded-n&quot;</ETag></CompleteMultipartUploadResult>")

    def log_message(self, *args):
        pass


serve_until_stdin_closes(Discard)
