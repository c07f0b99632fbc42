"""A fault-injecting HTTP proxy for the S3 tests, on 127.0.0.1.

    python fault_proxy.py UPSTREAM_PORT MODE COUNT

Prints the port it listens on, then forwards every request verbatim (Host header
included, so signatures stay valid) to 127.0.0.1:UPSTREAM_PORT, except that the
first COUNT requests (COUNT < 0: all of them) get the fault MODE instead:

    slowdown   503 with an S3 SlowDown error document
    error500   500 with an S3 InternalError document
    reset      the connection is reset without an answer
    stall      no answer for 30 s, then the connection is closed
    part2      only requests for part 2 of a multipart upload: 403 AccessDenied
    part2abort part2, and the upload's abort (DELETE ...?uploadId=) too

GET /__faults answers how many faults were injected. Stops when stdin closes.
"""
import http.client
import http.server
import socket
import struct
import sys
import threading
import time

from loopback import serve_until_stdin_closes

UPSTREAM = int(sys.argv[1])
MODE = sys.argv[2]
COUNT = int(sys.argv[3])
lock = threading.Lock()
injected = 0
COMMAND = __import__("contextvars").ContextVar("command", default="")


def take_fault(path):
    global injected
    with lock:
        if MODE in ("part2", "part2abort"):
            is_abort = MODE == "part2abort" and "uploadId=" in path and "partNumber=" not in path and COMMAND.get() == "DELETE"
            if "partNumber=2&" in path or path.endswith("partNumber=2") or is_abort:
                injected += 1
                return True
            return False
        if COUNT < 0 or injected < COUNT:
            injected += 1
            return True
        return False


def error_document(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>').encode()


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def respond(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/__faults":
            self.respond(200, str(injected).encode())
            return
        COMMAND.set(self.command)
        if take_fault(self.path):
            if MODE == "slowdown":
                self.respond(503, error_document("SlowDown", "Please reduce your request rate."))
            elif MODE == "error500":
                self.respond(500, error_document("InternalError", "We encountered an internal error."))
            elif MODE in ("part2", "part2abort"):
                self.respond(403, error_document("AccessDenied", "Access Denied"))
            elif MODE == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
            elif MODE == "stall":
                time.sleep(30)
                self.close_connection = True
            return
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items()}
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            upstream.putheader(name, value)
        upstream.endheaders(body if body or self.command in ("PUT", "POST") else None)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

    def log_message(self, *args):
        pass


serve_until_stdin_closes(Proxy)
