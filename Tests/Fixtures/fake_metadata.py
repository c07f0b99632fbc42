"""Fake AWS credential endpoints for the credential-chain tests, on 127.0.0.1.

Serves both the container credentials endpoint (GET /container-creds, which
requires "Authorization: secret-token") and EC2 instance metadata with IMDSv2
(PUT /latest/api/token, then GET /latest/meta-data/iam/security-credentials/ and
.../test-role, both requiring the token). Credentials expire EXPIRY_SECONDS from
the request and change on every request (the access key id counts requests), so
refreshing can be observed. Prints the port; stops when stdin closes.

    python fake_metadata.py EXPIRY_SECONDS
"""
import datetime
import http.server
import json
import sys
import threading

from loopback import serve_until_stdin_closes

EXPIRY = int(sys.argv[1])
lock = threading.Lock()
served = 0


def credentials():
    global served
    with lock:
        served += 1
        number = served
    expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=EXPIRY)
    return json.dumps({
        "Code": "Success",
        "AccessKeyId": f"ASIAFAKE{number:04d}",
        "SecretAccessKey": "fake-secret",
        "Token": "fake-session-token",
        "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.send(200, b"imds-token")
        else:
            self.send(400)

    def do_GET(self):
        if self.path == "/container-creds":
            self.send(200, credentials()) if self.headers.get("Authorization") == "secret-token" else self.send(401)
            return
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-token":
            self.send(401)
        elif self.path == "/latest/meta-data/iam/security-credentials/":
            self.send(200, b"test-role")
        elif self.path == "/latest/meta-data/iam/security-credentials/test-role":
            self.send(200, credentials())
        else:
            self.send(404)

    def log_message(self, *args):
        pass


serve_until_stdin_closes(Handler)
