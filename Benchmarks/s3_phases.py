"""Where a 1 GiB multipart upload into moto spends its time, per client.

Runs the test fixture's moto server with every request timed inside the server,
uploads the same file once with the s3 sink's code (stage-bench --s3-upload) and
once with `aws s3 cp`, and prints for each: the whole upload, the span from the
first part's arrival to the last part's answer, and how long moto took to complete
the upload. Run with the bench virtualenv's Python after Benchmarks/run --s3 has
set things up:

    .build/bench-venv/bin/python Benchmarks/s3_phases.py [MiB]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from s3_bench import client_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.dirname(sys.executable)


def serve(log_path):
    """The fixture's server, with each request's start and duration logged."""
    import werkzeug.serving
    log = open(log_path, "a", buffering=1)
    original = werkzeug.serving.WSGIRequestHandler.run_wsgi

    def timed(handler):
        start = time.perf_counter()
        original(handler)
        log.write(json.dumps({"start": start, "seconds": time.perf_counter() - start,
                              "method": handler.command, "path": handler.path}) + "\n")

    werkzeug.serving.WSGIRequestHandler.run_wsgi = timed
    sys.path.insert(0, os.path.join(ROOT, "Tests", "Fixtures"))
    import s3_server
    sys.argv = ["s3_server.py", "bench"]
    s3_server.main()


def upload(who, path, log_path):
    server = subprocess.Popen([sys.executable, __file__, "--serve", log_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    settings = json.loads(server.stdout.readline())
    env = dict(client_env(settings), S3_BENCH_KEY="object", AWS_ENDPOINT_URL_S3=settings["endpoint"])
    command = ([os.path.join(ROOT, ".build", "release", "stage-bench"), "--s3-upload", path] if who == "sink" else
               [os.path.join(VENV, "aws"), "s3", "cp", path, "s3://bench/object", "--endpoint-url", settings["endpoint"], "--only-show-errors"])
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    total = time.perf_counter() - start
    server.stdin.close()
    server.kill()
    requests = [json.loads(line) for line in open(log_path) if '"/bench/object' in line]
    parts = [r for r in requests if r["method"] == "PUT"]
    complete = [r for r in requests if r["method"] == "POST" and "uploadId" in r["path"]]
    first, last = min(r["start"] for r in parts), max(r["start"] + r["seconds"] for r in parts)
    print(f"| {who} | {total:.2f} s | {len(parts)} | {last - first:.2f} s | {complete[0]['seconds']:.2f} s |")


def main():
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
        return
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    with tempfile.TemporaryDirectory(prefix="s3phases-") as work:
        path = os.path.join(work, "object.bin")
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        print("| client | whole upload | parts | first part to last answer | CompleteMultipartUpload in moto |")
        print("|---|---|---|---|---|")
        for who in ["sink", "aws"]:
            upload(who, path, os.path.join(work, f"{who}.log"))


if __name__ == "__main__":
    main()
