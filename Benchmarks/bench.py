"""Side-by-side benchmarks: this project's runner against the Python reference job
(NumPy + Pillow) and against cjpeg, plus per-stage figures. Run through
Benchmarks/run, which builds the binaries and sets up Python first.

Every comparison alternates the contenders run by run on the same machine and
reports medians; peak memory is each process's maximum resident set size (from
wait4). Prints a Markdown report.
"""
import argparse
import shutil
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, ".build", "release", "runner")
STAGE_BENCH = os.path.join(ROOT, ".build", "release", "stage-bench")
PIPELINE = os.path.join(ROOT, "pipelines", "poisson.yaml")
REFERENCE = os.path.join(ROOT, "Benchmarks", "reference_job.py")
VIPS_JOB = os.path.join(ROOT, "Benchmarks", "vips_job.py")
C_FLOOR = os.path.join(ROOT, ".build", "release", "c_floor")


def measure(command, cwd):
    """Wall seconds and peak RSS (MiB) of one process.

    The RSS comes from GNU time, not from this process's wait4: a child created
    from this (large) Python process inherits its high-water mark, while one that
    `time` forks does not.
    """
    with tempfile.NamedTemporaryFile(mode="r", suffix=".rss") as rss:
        start = time.perf_counter()
        result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *command], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"benchmark command failed: {' '.join(command)}\n{result.stderr.decode()}")
        return seconds, int(rss.read().strip().splitlines()[-1]) / 1024


def compare(contenders, runs, cwd):
    """Runs each contender `runs` times, interleaved; returns {name: (median s, median MiB)}."""
    samples = {name: [] for name, _ in contenders}
    for run in range(runs):
        for name, make_command in contenders:
            samples[name].append(measure(make_command(run), cwd))
    return {name: (statistics.median(s for s, _ in values), statistics.median(m for _, m in values))
            for name, values in samples.items()}


def runner_command(size, run, extra=()):
    return [RUNNER, PIPELINE, "-q", "--run-id", f"bench-{size}-{run}", "--set", f"params.size={size}", *extra]


def python_command(size, run, directory, fmt="jpeg"):
    return [sys.executable, REFERENCE, "--size", str(size), "--format", fmt,
            "--out", os.path.join(directory, f"ref-{size}-{run}.{'jpg' if fmt == 'jpeg' else 'png'}")]


def reference_pgm(size, path):
    """A PGM of the same kind as the job's image: normalised Poisson(3) noise."""
    grid = np.random.default_rng(1).poisson(3.0, (size, size))
    unit = (grid - grid.min()) / (grid.max() - grid.min())
    Image.fromarray(np.round(unit * 255).astype(np.uint8), mode="L").save(path)


def sampler_comparison(rounds):
    """Medians of this project's sampler and NumPy's, measured alternately."""
    ours, numpys = {}, {}
    for _ in range(rounds):
        lines = subprocess.run([STAGE_BENCH, "--sampler-only", "--runs", "5"], check=True, capture_output=True, text=True).stdout
        for figure in map(json.loads, lines.splitlines()):
            ours.setdefault(figure["lambda"], []).append(figure["ns_per_sample"])
            numpys.setdefault(figure["lambda"], []).append(numpy_poisson_ns(figure["lambda"], runs=5))
    return {lam: (statistics.median(ours[lam]), statistics.median(numpys[lam])) for lam in ours}


def numpy_poisson_ns(lam, size=2048, runs=7):
    rng = np.random.default_rng(1)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        rng.poisson(lam, (size, size))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e9 / (size * size)


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}, Python {platform.python_version()}, NumPy {np.__version__}, Pillow {Image.__version__}"


def present(figure, fields):
    """The fields a figure has, each formatted after scaling: [(key, format, scale)]."""
    return [form.format(figure[key] * scale) for key, form, scale in fields if key in figure]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1024,2048,4096,8192")
    parser.add_argument("--big", type=int, default=16384, help="size of the memory check (0 to skip)")
    parser.add_argument("--large", default="2048,8192,16384,32768,65500",
                        help="sizes of the streaming table: runner against libvips and a C floor (empty to skip)")
    parser.add_argument("--huge-png", type=int, default=100000,
                        help="side of the PNG written to check bounded memory beyond the JPEG limit (0 to skip)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out = []
    say = out.append

    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        say(f"Machine: {machine()}\n")
        say(f"Runs per figure: {args.runs}, interleaved; medians. Command: `Benchmarks/run --runs {args.runs} --sizes {args.sizes}`\n")

        say("### Whole job: Poisson(3) grid -> normalize -> JPEG q95 -> file, process start to file on disk\n")
        say("| size | Python (NumPy + Pillow) | runner | speed-up | cjpeg alone | runner / cjpeg | RSS Python | RSS runner | RSS ratio |")
        say("|---|---|---|---|---|---|---|---|---|")
        for size in sizes:
            pgm = os.path.join(work, f"grid-{size}.pgm")
            reference_pgm(size, pgm)
            result = compare([
                ("python", lambda run, s=size: python_command(s, run, work)),
                ("runner", lambda run, s=size: runner_command(s, run)),
                ("cjpeg", lambda run, p=pgm: ["cjpeg", "-quality", "95", "-grayscale", "-outfile", os.path.join(work, "c.jpg"), p]),
            ], args.runs, work)
            (py, py_rss), (rn, rn_rss), (cj, _) = result["python"], result["runner"], result["cjpeg"]
            say(f"| {size} | {py * 1000:.0f} ms | {rn * 1000:.0f} ms | {py / rn:.1f}x | {cj * 1000:.0f} ms | {rn / cj:.2f}x "
                f"| {py_rss:.0f} MiB | {rn_rss:.0f} MiB | {py_rss / rn_rss:.1f}x |")

        say("\n### PNG with default settings, 2048x2048\n")
        png_path = os.path.join(work, "png-{run}.png")
        result = compare([
            ("python", lambda run: python_command(2048, run, work, "png")),
            ("runner", lambda run: runner_command(2048, run, ["--profile", "png", "--set",
                                                               f"stages.store.with.path={png_path.format(run=run)}"])),
        ], args.runs, work)
        py_size = os.path.getsize(os.path.join(work, "ref-2048-0.png"))
        rn_size = os.path.getsize(png_path.format(run=0))
        (py, _), (rn, _) = result["python"], result["runner"]
        say("| | whole job | file size |")
        say("|---|---|---|")
        say(f"| Python, Pillow `save(format='PNG')` | {py * 1000:.0f} ms | {py_size / 1e6:.2f} MB |")
        say(f"| runner, `png` defaults | {rn * 1000:.0f} ms | {rn_size / 1e6:.2f} MB |")
        say(f"| ratio | {py / rn:.1f}x faster | {rn_size / py_size:.3f} of the size |")

        large = [int(s) for s in args.large.split(",") if s]
        if large:
            say("\n### Streaming: runner against libvips, a C floor, the Python reference and cjpeg\n")
            say("libvips: `gaussnoise(N, N, mean=128, sigma=20).cast('uchar').jpegsave(Q=95)` in a process of its own "
                "(pyvips-binary). C floor: `Benchmarks/c_floor.c`, one thread, whole image: Poisson(3) by table inversion, "
                "min-max to 8 bits, libjpeg q95, fwrite (no fsync). Runner: the reference job (JPEG q95 to a file, fsync'd), "
                "streamed, and with `--no-stream` (whole artifacts) up to 32768. The Python reference and `cjpeg` (encoding a PGM "
                "of such an image) up to 16384: beyond, their whole-image arrays or input files run to tens of GB. "
                "Times are process start to exit; medians of 3 runs up to 16384, one run above.\n")
            say("| size | runner | RSS | runner --no-stream | RSS | libvips | RSS | C floor | RSS | Python | RSS | cjpeg | RSS "
                "| runner / libvips | runner / C | RSS runner / libvips |")
            say("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

            def clean():
                for name in os.listdir(work):
                    if name.endswith(".jpg") or name.endswith(".png"):
                        os.remove(os.path.join(work, name))
                shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)

            def median_of(command, count):
                """Median time and RSS of `count` runs (large files leave the page cache
                busy writing back for a while: one run is noisy)."""
                figures = []
                for _ in range(count):
                    figures.append(measure(command, work))
                    clean()
                return statistics.median(f[0] for f in figures), statistics.median(f[1] for f in figures)

            for size in large:
                count = 3 if size <= 16384 else 1
                (rn, rn_rss) = median_of(runner_command(size, "large"), count)
                whole = median_of(runner_command(size, "whole", ["--no-stream"]), count) if size <= 32768 else None
                (vp, vp_rss) = measure([sys.executable, VIPS_JOB, "--size", str(size), "--out", os.path.join(work, "vips.jpg")], work)
                clean()
                (cf, cf_rss) = measure([C_FLOOR, str(size), os.path.join(work, "c.jpg")], work)
                clean()
                python = cjpeg = None
                if size <= 16384:
                    python = measure(python_command(size, "large", work), work)
                    clean()
                    pgm = os.path.join(work, f"grid-{size}.pgm")
                    reference_pgm(size, pgm)
                    cjpeg = measure(["cjpeg", "-quality", "95", "-grayscale", "-outfile", os.path.join(work, "c.jpg"), pgm], work)
                    os.remove(pgm)
                    clean()

                def pair(figure):
                    return f"{figure[0]:.2f} s | {figure[1]:.0f} MiB" if figure else "- | -"
                say(f"| {size} | {rn:.2f} s | {rn_rss:.0f} MiB | {pair(whole)} | {vp:.2f} s | {vp_rss:.0f} MiB | {cf:.2f} s | {cf_rss:.0f} MiB "
                    f"| {pair(python)} | {pair(cjpeg)} | {rn / vp:.2f}x | {rn / cf:.2f}x | {rn_rss / vp_rss:.2f}x |")

        if args.huge_png:
            n = args.huge_png
            command = [RUNNER, PIPELINE, "-q", "--run-id", "huge", "--profile", "png", "--set", f"params.size={n}",
                       "--set", "stages.encode.with.compression=1"]
            seconds, rss = measure(command, work)
            image = os.path.join(work, "out", "poisson-grid-images", "huge", f"poisson_grid_{n}x{n}.png")
            size = os.path.getsize(image)
            shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
            say(f"\n### Beyond the JPEG limit: a {n}x{n} PNG (compression 1), streamed\n")
            say(f"runner: {seconds:.1f} s, peak RSS {rss:.0f} MiB, {size / 1e9:.2f} GB written "
                f"(the grid alone would be {n * n / 2**30:.1f} GiB).")

        if args.big:
            seconds, rss = measure(runner_command(args.big, 0), work)
            say(f"\n### Memory: {args.big}x{args.big} JPEG job\n")
            say(f"runner: {seconds:.1f} s, peak RSS {rss:.0f} MiB ({rss / 1024:.2f} GiB).")

        say("\n### Per stage (in process, 2048x2048; the sampler against NumPy alternately, medians of the rounds)\n")
        lines = subprocess.run([STAGE_BENCH, "--runs", "7"], check=True, capture_output=True, text=True).stdout.splitlines()
        figures = [json.loads(line) for line in lines]
        say("| stage | what | figure | for comparison |")
        say("|---|---|---|---|")
        for lam, (ours, numpy_ns) in sampler_comparison(args.runs).items():
            say(f"| poisson | sampler only, lambda {lam:g}, 1 core | {ours:.2f} ns/sample "
                f"| NumPy `default_rng().poisson`: {numpy_ns:.1f} ns/sample ({numpy_ns / ours:.1f}x) |")
        for figure in figures:
            if figure["stage"] == "poisson" and figure["what"] == "sampler":
                continue
            elif figure["stage"] == "poisson":
                say(f"| poisson | whole stage (allocation included), lambda 3, --jobs {figure['jobs']} | {figure['ns_per_sample']:.2f} ns/sample | |")
            elif figure["stage"] == "normalize":
                rates = present(figure, [("input_mb_per_s", "{:.0f} M elements/s", 1), ("output_mb_per_s", "{:.0f} MB/s written", 1)])
                say(f"| normalize | {figure['what']}, --jobs {figure['jobs']} | {figure['seconds'] * 1000:.3f} ms"
                    f"{', ' if rates else ''}{', '.join(rates)} | |")
            elif figure["stage"] == "jpeg":
                extra = present(figure, [("seconds_from_dense", "from dense Float32: {:.1f} ms", 1000),
                                         ("seconds_from_uint8", "from UInt8 (raw counts, far less entropy): {:.1f} ms", 1000)])
                say(f"| jpeg | {figure['what']}, from the normalised grid | {figure['seconds'] * 1000:.1f} ms, {figure['pixels_mb_per_s']:.0f} Mpixel/s, "
                    f"{figure['bytes'] / 1e6:.2f} MB | {'; '.join(extra)} |")
            elif figure["stage"] == "png":
                say(f"| png | {figure['what']} | {figure['pixels_mb_per_s']:.0f} Mpixel/s, {figure['bytes'] / 1e6:.3f} MB | |")

    print("\n".join(out))


if __name__ == "__main__":
    main()
