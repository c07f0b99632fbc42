"""An S3-shaped HTTP/1.1 server on 127.0.0.1 that keeps connections alive, as S3 does
(moto's server closes each one after its response), and counts them: PUT and POST
read the body and answer just enough for an upload to finish, HEAD answers 404 (no
such object), and GET /connections returns how many connections were accepted so
far. Prints its port; stops when stdin closes.

    python keepalive_s3.py
"""
import http.server
import threading
import uuid

from loopback import serve_until_stdin_closes

accepted = 0
lock = threading.Lock()


class KeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global accepted
        with lock:
            accepted += 1
        super().setup()

    def drain(self):
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)

    def answer(self, status=200, body=b"", etag=None):
        self.send_response(status)
        if etag:
            self.send_header("ETag", f'"{etag}"')
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/connections":
            with lock:
                self.answer(body=str(accepted).encode())
        else:
            self.answer(404)

    def do_HEAD(self):
        self.answer(404)

    def do_PUT(self):
        self.drain()
        self.answer(etag="kept")

    def do_POST(self):
        self.drain()
        if "uploads" in self.path and "uploadId" not in self.path:
            self.answer(body=f"<InitiateMultipartUploadResult><UploadId>{uuid.uuid4().hex}</UploadId></InitiateMultipartUploadResult>".encode())
        else:
            self.answer(body=b"<CompleteMultipartUploadResult><ETag>&quot;kept-n&quot;</ETag></CompleteMultipartUploadResult>")

    def log_message(self, *args):
        pass


serve_until_stdin_closes(KeepAlive)
