"""Podman's Docker-compatible API on a unix socket, for the container export tests.

    python podman_service.py SOCKET_PATH

Starts `podman system service --time=0 unix://SOCKET_PATH`, waits until the socket
answers GET /version, prints one JSON line {"socket": "unix://..."} and serves until
its standard input closes, then stops the service and removes the socket.
"""
import ctypes
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

path = os.path.abspath(sys.argv[1])


class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)




def die_with_parent():
    # The test kills this script with SIGKILL when it is done: the service must not
    # outlive it (PR_SET_PDEATHSIG: SIGTERM when the parent dies).
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


service = subprocess.Popen(["podman", "system", "service", "--time=0", "unix://" + path], preexec_fn=die_with_parent,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    deadline = time.monotonic() + 30
    while True:
        try:
            connection = UnixConnection("localhost")
            connection.request("GET", "/v1.41/version")
            response = connection.getresponse()
            body = json.loads(response.read())
            if response.status == 200 and body.get("Version"):
                break
        except (OSError, ValueError, http.client.HTTPException):
            pass
        if service.poll() is not None or time.monotonic() > deadline:
            print(json.dumps({"error": "podman system service did not answer on " + path}), flush=True)
            sys.exit(1)
        time.sleep(0.1)
    print(json.dumps({"socket": "unix://" + path, "version": body.get("Version")}), flush=True)
    sys.stdin.read()
finally:
    service.terminate()
    try:
        service.wait(10)
    except subprocess.TimeoutExpired:
        service.kill()
    try:
        os.unlink(path)
    except OSError:
        pass
