"""Sweep benchmark: N images of SIZE x SIZE (seeds 0 to N-1), each written to a file
and uploaded to a local S3 server (moto), side by side:

- the sweep: one runner process, a pipeline with `matrix: {seed: {range: [0, N]}}`;
- a shell loop that calls the runner N times (the same pipeline without the matrix);
- a Python loop with NumPy, Pillow and boto3 in one process, the original job's stack;
- the C floor (Benchmarks/c_floor.c --items): two processes, one per core, each making
  half the images with libjpeg and uploading them through one libcurl handle.

Then the same without the uploads (files only), where the C floor's JPEG encoding
alone (`--encode-only`, on both cores) bounds what any JPEG pipeline can reach.

Prints Markdown tables: wall time, images per second, ratios, and peak RSS (the
largest process of each way). Also runs the sweep with 5 x N items to show that its
peak memory does not grow with the items. Run through Benchmarks/run --sweep, which
sets up the tools.

    Benchmarks/run --sweep [--items 200] [--size 512] [--runs 3]
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
RUNNER = os.path.join(ROOT, ".build", "release", "runner")
C_FLOOR = os.path.join(ROOT, ".build", "release", "c_floor")

PIPELINE = """name: sweep-bench
params:
  size: {size}
  lambda: 3.0
{matrix}
stages:
  generate:
    type: poisson
    with: {{width: "${{size}}", height: "${{size}}", lambda: "${{lambda}}"}}
  normalize: {{type: normalize, input: generate}}
  encode: {{type: jpeg, input: normalize, with: {{quality: 95}}}}
  file:
    type: filesystem
    input: encode
    with: {{path: "out/{{run_id}}/poisson_grid_${{size}}x${{size}}.jpg"}}
"""

UPLOAD = """  upload:
    type: s3
    input: encode
    with: {{bucket: bench, key: "poisson-grid-images/{{run_id}}/poisson_grid_${{size}}x${{size}}.jpg"}}
"""

PYTHON_LOOP = r"""
import os, sys
import boto3, numpy as np
from PIL import Image
items, size, out, upload = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "upload"
s3 = boto3.client("s3") if upload else None
for seed in range(items):
    grid = np.random.default_rng(seed).poisson(3.0, (size, size))
    low, high = grid.min(), grid.max()
    unit = (grid - low) / (high - low) if high > low else np.zeros(grid.shape)
    image = Image.fromarray(np.round(unit * 255).astype(np.uint8), mode="L")
    path = os.path.join(out, f"py{seed}.jpg")
    image.save(path, format="JPEG", quality=95)
    if upload:
        s3.upload_file(path, "bench", f"python/{seed}/poisson_grid_{size}x{size}.jpg")
"""


def run(command, env, cwd):
    """Wall seconds and the peak RSS (KiB) of the process or its largest descendant."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(command)}\n{err.decode()}")
    return elapsed, usage.ru_maxrss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    moto = subprocess.Popen([sys.executable, os.path.join(ROOT, "Tests", "Fixtures", "s3_server.py"), "bench"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    settings = json.loads(moto.stdout.readline())
    env = dict(os.environ, AWS_ACCESS_KEY_ID=settings["access_key"], AWS_SECRET_ACCESS_KEY=settings["secret_key"],
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_ENDPOINT_URL_S3=settings["endpoint"], AWS_ENDPOINT_URL=settings["endpoint"])
    env.pop("AWS_SESSION_TOKEN", None)
    try:
        with tempfile.TemporaryDirectory(prefix="sweep-bench-") as work:
            def write(name, matrix, upload=True):
                path = os.path.join(work, name)
                with open(path, "w") as f:
                    f.write(PIPELINE.format(size=args.size, matrix=matrix) + (UPLOAD.format(size=args.size) if upload else ""))
                return path
            seeds = "matrix:\n  seed: {range: [0, %d]}" % args.items
            sweep = write("sweep.yaml", seeds)
            files_only = write("files.yaml", seeds, upload=False)
            large = write("large.yaml", "matrix:\n  seed: {range: [0, %d]}" % (5 * args.items))
            plain = write("plain.yaml", "")
            loop = ("for i in $(seq 0 %d); do %s %s --seed $i --run-id loop$R.$i >/dev/null || exit 1; done"
                    % (args.items - 1, RUNNER, plain))
            os.makedirs(os.path.join(work, "c"), exist_ok=True)

            def c_floor(upload):
                """Both cores: one c_floor process for the even seeds, one for the odd."""
                half = [[C_FLOOR, str(args.size), os.path.join(work, "c"), "3.0", "--items", str(first), "2",
                         str((args.items - first + 1) // 2)]
                        + ([settings["endpoint"] + "/bench/c", settings["access_key"] + ":" + settings["secret_key"]] if upload else [])
                        for first in (0, 1)]
                quoted = [" ".join("'%s'" % part for part in command) for command in half]
                return ["bash", "-c", "%s & a=$!; %s & b=$!; wait $a && wait $b" % tuple(quoted)]

            encode_only = ["bash", "-c", "'{0}' {1} - 3.0 --encode-only {2} & a=$!; '{0}' {1} - 3.0 --encode-only {3} & b=$!; wait $a && wait $b"
                           .format(C_FLOOR, args.size, (args.items + 1) // 2, args.items // 2)]
            python = lambda upload: [sys.executable, "-c", PYTHON_LOOP, str(args.items), str(args.size), work, "upload" if upload else "files"]
            uploads = {
                "sweep (one process)": lambda r: [RUNNER, sweep, "--run-id", f"sweep{r}", "--seed", "0"],
                "shell loop (%d runner processes)" % args.items: lambda r: ["bash", "-c", loop.replace("$R", str(r))],
                "Python loop (NumPy, Pillow, boto3)": lambda r: python(True),
                "C floor (2 processes: libjpeg, libcurl)": lambda r: c_floor(True),
            }
            files = {
                "sweep (one process)": lambda r: [RUNNER, files_only, "--run-id", f"files{r}", "--seed", "0"],
                "Python loop (NumPy, Pillow)": lambda r: python(False),
                "C floor (2 processes)": lambda r: c_floor(False),
                "C floor, JPEG encoding alone (2 processes)": lambda r: encode_only,
            }
            results = {name: [] for name in uploads}
            results_files = {name: [] for name in files}
            for r in range(args.runs):
                for name, command in uploads.items():
                    results[name].append(run(command(r), env, work))
                for name, command in files.items():
                    results_files[name].append(run(command(r), env, work))
            # The same sweep with five times the items: its peak memory stays put.
            big = run([RUNNER, large, "--run-id", "large", "--seed", "0"], env, work)
            # The sweep's images are the plain runs' (seed i is item i).
            for i in (0, args.items - 1):
                a = open(os.path.join(work, "out", f"sweep0.{i}",
                                      f"poisson_grid_{args.size}x{args.size}.jpg"), "rb").read()
                b = open(os.path.join(work, "out", f"loop0.{i}", f"poisson_grid_{args.size}x{args.size}.jpg"), "rb").read()
                if a != b:
                    sys.exit(f"item {i}: the sweep's image differs from the plain run's")
    finally:
        moto.stdin.close()
        moto.kill()

    def table(title, results, sweep_time, extra=None):
        print(title + "\n")
        print("| way | wall | images/s | sweep is faster by | peak RSS |")
        print("|---|---|---|---|---|")
        for name, samples in results.items():
            wall = statistics.median(t for t, _ in samples)
            rss = max(m for _, m in samples) / 1024
            print(f"| {name} | {wall:.2f} s | {args.items / wall:.1f} | {wall / sweep_time:.2f}x | {rss:.0f} MiB |")
        if extra:
            print(extra)
        print()

    median = lambda samples: statistics.median(t for t, _ in samples)
    sweep_time = median(results["sweep (one process)"])
    table(f"{args.items} images of {args.size}x{args.size}, each written to a file and uploaded to moto; median of {args.runs} runs",
          results, sweep_time,
          f"| sweep of {5 * args.items} items | {big[0]:.2f} s | {5 * args.items / big[0]:.1f} | | {big[1] / 1024:.0f} MiB |")
    files_time = median(results_files["sweep (one process)"])
    table("The same, written to files only (no uploads)", results_files, files_time)
    python_up, floor_up = median(results["Python loop (NumPy, Pillow, boto3)"]), median(results["C floor (2 processes: libjpeg, libcurl)"])
    python_files = median(results_files["Python loop (NumPy, Pillow)"])
    encoding = median(results_files["C floor, JPEG encoding alone (2 processes)"])
    print(f"The most any way could be faster than the Python loop on this machine: {python_up / floor_up:.1f}x with uploads "
          f"(the C floor's), {python_files / encoding:.1f}x without (JPEG encoding alone). The sweep: "
          f"{python_up / sweep_time:.1f}x and {python_files / files_time:.1f}x.")


if __name__ == "__main__":
    main()
