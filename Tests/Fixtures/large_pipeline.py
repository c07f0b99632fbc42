"""Writes a large pipeline of built-in stages, for timing `runner validate`.

    python large_pipeline.py chain|fan COUNT > FILE

chain: one poisson source, then COUNT - 1 normalize stages, each reading the one
before it. fan: one poisson source read by COUNT - 1 normalize stages.
"""
import sys

shape, count = sys.argv[1], int(sys.argv[2])
lines = ["name: large-" + shape, "stages:",
         "  s0: {type: poisson, with: {width: 1, height: 1, lambda: 1}}"]
for index in range(1, count):
    producer = f"s{index - 1}" if shape == "chain" else "s0"
    lines.append(f"  s{index}: {{type: normalize, input: {producer}}}")
print("\n".join(lines))
