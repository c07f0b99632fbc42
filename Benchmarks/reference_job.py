"""The reference job in Python, as users run it without this project.

Generates a size x size grid of Poisson(lambda) samples with NumPy's default
generator, normalises it to [0, 1] by min-max, converts it to 8-bit gray as Pillow
users do (round(x * 255)), and saves it with Pillow: JPEG at quality 95, or PNG with
Pillow's default settings.

    python reference_job.py --size 2048 --format jpeg --out out.jpg [--seed 1]
"""
import argparse

import numpy as np
from PIL import Image


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--lam", type=float, default=3.0)
    parser.add_argument("--format", choices=["jpeg", "png"], default="jpeg")
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    grid = rng.poisson(args.lam, (args.size, args.size))
    low, high = grid.min(), grid.max()
    unit = (grid - low) / (high - low) if high > low else np.zeros(grid.shape)
    image = Image.fromarray(np.round(unit * 255).astype(np.uint8), mode="L")
    if args.format == "jpeg":
        image.save(args.out, format="JPEG", quality=args.quality)
    else:
        image.save(args.out, format="PNG")


if __name__ == "__main__":
    main()
