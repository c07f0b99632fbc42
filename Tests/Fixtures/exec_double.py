"""An exec stage written with NumPy, for the tests: reads the input grid, writes
2 * x + 1 as uint16; with mode "unit", x / max(x) as float32 (the min-max
normalisation when the minimum is 0); other modes write deliberately wrong output."""
import sys

import numpy as np

grid = np.load(sys.argv[1])
print(f"read {grid.shape} {grid.dtype}", file=sys.stderr)
mode = sys.argv[3] if len(sys.argv) > 3 else "ok"
if mode == "ok":
    np.save(sys.argv[2], (grid.astype(np.uint16) * 2 + 1))
elif mode == "unit":
    np.save(sys.argv[2], (grid / grid.max()).astype(np.float32))
elif mode == "dtype":
    np.save(sys.argv[2], grid.astype(np.uint8))
elif mode == "shape":
    np.save(sys.argv[2], np.zeros((2, 3, 4), dtype=np.uint16))
elif mode == "truncated":
    np.save(sys.argv[2], grid.astype(np.uint16))
    with open(sys.argv[2], "r+b") as f:
        f.truncate(200)
elif mode == "nothing":
    pass
