"""libvips doing the same kind of job as the runner, in a process of its own:
Gaussian noise (mean 128, sigma 20), 8-bit, JPEG quality 95, to a file.

    vips_job.py --size N --out FILE

libvips evaluates the image in small regions on demand and writes it top to bottom,
so its peak memory stays flat as the size grows: the figure issue 12 compares with.
"""
import argparse

import pyvips


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    image = pyvips.Image.gaussnoise(args.size, args.size, mean=128, sigma=20).cast("uchar")
    image.jpegsave(args.out, Q=95)


if __name__ == "__main__":
    main()
