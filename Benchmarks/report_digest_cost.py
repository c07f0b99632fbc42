"""The cost of gathering the run report's grid digests (histograms and previews): the
run's own duration (its run_finished event), without a report and with --report,
interleaved, medians, and each side's largest peak RSS.

    python3 Benchmarks/report_digest_cost.py [RUNNER] [RUNS] [SIZE]

RUNNER defaults to .build/release/runner (scripts/build-release runner), RUNS to 40,
SIZE to 2048 (the reference job; at 8192 the grids stream, and their digests come
from the bands as they go by).
"""
import json, os, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build/release/runner"))
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 40
SIZE = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
P = os.path.join(ROOT, "pipelines/poisson.yaml")
WORK = tempfile.mkdtemp(prefix="digest-cost-")
REPORT = os.path.join(WORK, "r.json")


def run(extra):
    """The run's duration in seconds and the process's peak RSS in KiB."""
    process = subprocess.Popen([R, P, "--seed", "1", "--log-format", "json", "--set", f"params.size={SIZE}",
                                "--set", "stages.store.with.overwrite=true"] + extra,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=WORK)
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"runner failed ({process.returncode}):\n{err}")
    duration = next(json.loads(l)["duration_seconds"] for l in err.splitlines() if '"run_finished"' in l)
    return duration, usage.ru_maxrss


for _ in range(3):
    run([])
plain, digested = [], []
for _ in range(RUNS):
    plain.append(run([]))
    digested.append(run(["--report", REPORT]))
m = statistics.median
a, b = m(d for d, _ in plain), m(d for d, _ in digested)
print("%d² run without a report %.2f ms (peak RSS %.0f MiB), with --report (digests) %.2f ms (peak RSS %.0f MiB): %+.1f%%"
      % (SIZE, a * 1e3, max(r for _, r in plain) / 1024, b * 1e3, max(r for _, r in digested) / 1024, (b / a - 1) * 100))
