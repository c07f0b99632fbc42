"""The cost of gathering the run report's grid digests (histograms and previews) at
2048x2048: the run's own duration (its run_finished event), without a report and with
--report, interleaved, medians.

    python3 Benchmarks/report_digest_cost.py [RUNNER] [RUNS]

RUNNER defaults to .build/release/runner (scripts/build-release runner).
"""
import json, statistics, subprocess, sys
import os, tempfile
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build/release/runner")
P = os.path.join(ROOT, "pipelines/poisson.yaml")
REPORT = os.path.join(tempfile.mkdtemp(prefix="digest-cost-"), "r.json")
def run(extra):
    out = subprocess.run([R, P, "--seed", "1", "--log-format", "json"] + extra, capture_output=True, text=True, check=True).stderr
    return next(json.loads(l)["duration_seconds"] for l in out.splitlines() if '"run_finished"' in l)
for _ in range(3): run([])
plain, digested = [], []
for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 40):
    plain.append(run([]))
    digested.append(run(["--report", REPORT]))
m = statistics.median
print("run without a report %.2f ms, with --report (digests) %.2f ms: %+.1f%%" % (m(plain) * 1e3, m(digested) * 1e3, (m(digested) / m(plain) - 1) * 100))
