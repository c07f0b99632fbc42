"""Reference figures for the report's statistics, from NumPy and SciPy.

    python statistics_reference.py LAMBDA SAMPLE_LAMBDA COUNT SEED

Draws COUNT Poisson(SAMPLE_LAMBDA) samples with NumPy (seeded), and prints one JSON
line: the counts of each value; SciPy's Poisson(LAMBDA) pmf for k = 0..30; SciPy's
chi-square survival function on a grid of (x, df); and Pearson's test of the counts
against Poisson(LAMBDA) with scipy.stats.chisquare, over bins made by the rule the
report documents: from k = 0 up, a bin closes once it expects at least 5 samples and
what is left expects at least 5; the rest is one open tail bin, merged into the bin
before it when it expects less than 5.
"""
import json
import sys

import numpy
from scipy import stats

lam, sample_lam, count, seed = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
samples = numpy.random.default_rng(seed).poisson(sample_lam, count)
counts = numpy.bincount(samples).tolist()
n = len(samples)

bins = []  # [low, high or None, observed, expected]
low, observed, expected, cumulative = 0, 0, 0.0, 0.0
last = max(len(counts) - 1, int(lam + 12 * lam ** 0.5 + 12))
for k in range(last + 1):
    e = n * stats.poisson.pmf(k, lam)
    cumulative += e
    observed += counts[k] if k < len(counts) else 0
    expected += e
    if expected >= 5 and n - cumulative >= 5:
        bins.append([low, k, observed, expected])
        low, observed, expected = k + 1, 0, 0.0
tail_expected = n * stats.poisson.sf(low - 1, lam)
tail_observed = int(numpy.sum(samples >= low))
if tail_expected >= 5 or not bins:
    bins.append([low, None, tail_observed, tail_expected])
else:
    bins[-1][1] = None
    bins[-1][2] += tail_observed
    bins[-1][3] += tail_expected
f_obs = numpy.array([b[2] for b in bins], dtype=float)
f_exp = numpy.array([b[3] for b in bins], dtype=float)
f_exp *= f_obs.sum() / f_exp.sum()  # scipy insists the sums agree to 1e-8
chi = stats.chisquare(f_obs, f_exp)

grid = [[x, df, float(stats.chi2.sf(x, df))] for df in (1, 2, 3, 7, 10, 25, 60) for x in (0.1, 1.0, 3.84, 9.5, 30.0, 80.0)]
print(json.dumps({
    "counts": counts,
    "pmf": [float(stats.poisson.pmf(k, lam)) for k in range(31)],
    "survival": grid,
    "fit": {"bins": bins, "statistic": float(chi.statistic), "p_value": float(chi.pvalue), "degrees_of_freedom": len(bins) - 1},
}))
