"""The way the test servers run: a threading HTTP server on 127.0.0.1 on a free
port, which it prints, serving until its standard input closes (the process that
started it ended), then gone at once."""
import http.server
import os
import sys
import threading


def serve_until_stdin_closes(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    os._exit(0)
