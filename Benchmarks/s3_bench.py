"""Upload benchmark: the s3 sink's code against `aws s3 cp` and boto3's
`upload_file`, all to the same local S3 server (moto with signatures checked), and
against a plain `curl -T` PUT to a server that discards the bytes. Run through
Benchmarks/run --s3, which sets up the tools. Prints a Markdown table.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGE_BENCH = os.path.join(ROOT, ".build", "release", "stage-bench")
VENV = os.path.dirname(sys.executable)


class Helper:
    def __init__(self, command):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.line = self.process.stdout.readline().strip()

    def close(self):
        self.process.stdin.close()
        self.process.kill()


def client_env(settings):
    """The environment every client runs in: the test server's key, bucket "bench",
    no session token or instance metadata from the machine."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=settings["access_key"], AWS_SECRET_ACCESS_KEY=settings["secret_key"],
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", S3_BENCH_BUCKET="bench")
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def timed(command, env):
    start = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr.decode()}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="4,64,1024", help="MiB")
    args = parser.parse_args()
    moto = Helper([sys.executable, os.path.join(ROOT, "Tests", "Fixtures", "s3_server.py"), "bench"])
    settings = json.loads(moto.line)
    discard = Helper([sys.executable, os.path.join(ROOT, "Benchmarks", "discard_s3.py")])
    env = client_env(settings)
    boto = ("import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1]).upload_file(sys.argv[2], 'bench', sys.argv[3])")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="s3bench-") as work:
            for mib in [int(s) for s in args.sizes.split(",")]:
                path = os.path.join(work, f"{mib}.bin")
                with open(path, "wb") as f:
                    for _ in range(mib):
                        f.write(os.urandom(1 << 20))
                key = f"object-{mib}"
                discard_url = f"http://127.0.0.1:{discard.line}"
                moto_env = dict(env, AWS_ENDPOINT_URL_S3=settings["endpoint"], S3_BENCH_KEY=key)
                discard_env = dict(env, AWS_ENDPOINT_URL_S3=discard_url, S3_BENCH_KEY=key)
                contenders = [
                    ("sink", [STAGE_BENCH, "--s3-upload", path], moto_env),
                    ("aws", [os.path.join(VENV, "aws"), "s3", "cp", path, f"s3://bench/{key}", "--endpoint-url",
                             settings["endpoint"], "--only-show-errors"], env),
                    ("boto3", [sys.executable, "-c", boto, settings["endpoint"], path, key], env),
                    ("sink-discard", [STAGE_BENCH, "--s3-upload", path], discard_env),
                    ("sink-read-discard", [STAGE_BENCH, "--s3-upload", path], dict(discard_env, S3_BENCH_LOAD="read")),
                    ("curl-discard", ["curl", "-s", "-o", "/dev/null", "-T", path, f"{discard_url}/bench/{key}"], env),
                ]
                samples = {name: [] for name, _, _ in contenders}
                for run in range(args.runs):
                    # Each run starts with a different contender, and each upload starts
                    # with no dirty pages left behind by the last one (moto spools
                    # objects to temporary files): otherwise whoever comes after a big
                    # upload pays for its writeback.
                    for name, command, command_env in contenders[run % len(contenders):] + contenders[:run % len(contenders)]:
                        subprocess.run(["sync"], check=True)
                        samples[name].append(timed(command, command_env))
                rows.append((mib, {name: statistics.median(values) for name, values in samples.items()}))
                os.remove(path)
    finally:
        moto.close()
        discard.close()
    print(f"Runs per figure: {args.runs}, interleaved, each run starting with another contender, `sync` before each; medians. Command: `Benchmarks/run --s3 --runs {args.runs} --sizes {args.sizes}`\n")
    print("| object | s3 sink -> moto | aws s3 cp -> moto | boto3 upload_file -> moto | sink / aws | s3 sink -> discard "
          "| sink, file read into memory first -> discard | curl PUT -> discard | sink / curl |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mib, m in rows:
        print(f"| {mib} MiB | {m['sink']:.2f} s | {m['aws']:.2f} s | {m['boto3']:.2f} s | {m['sink'] / m['aws']:.2f}x "
              f"| {m['sink-discard']:.2f} s | {m['sink-read-discard']:.2f} s | {m['curl-discard']:.2f} s | {m['sink-discard'] / m['curl-discard']:.2f}x |")


if __name__ == "__main__":
    main()
