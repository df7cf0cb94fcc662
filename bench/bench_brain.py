"""Benchmark of ml.brain.brain_study on one 30-slice 512x512 study.

    .venv/bin/python bench/bench_brain.py [--data ../shared/data] [--repeat 5]
                                          [--profile 10]

The study is the middle 30 slices of a ct-ich patient (8-bit PNGs, already in the
brain window) when ../shared/data is there, else a synthetic 30x512x512 HU phantom.
Prints the median wall time of ``--repeat`` runs after one warm-up, per study and
per slice, against the issue's target of 300 ms per 30-slice study; ``--profile N``
adds the N functions with the most own time under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml.brain import brain_study  # noqa: E402

SLICES = 30
TARGET_MS = 300.0


def ct_ich_study(root: Path, patient: int | None) -> tuple[np.ndarray, str, str]:
    """The middle ``SLICES`` slices of a patient: ((30, 512, 512) uint8, units, name).

    ``patient``: a patient number, or None for the first with enough slices.
    """
    by_patient: dict[int, list[str]] = {}
    with (root / "labels.csv").open() as handle:
        for row in csv.DictReader(handle):
            by_patient.setdefault(int(row["patient"]), []).append(row["image"])
    chosen = patient
    if chosen is None:
        chosen = next(p for p in sorted(by_patient) if len(by_patient[p]) >= SLICES)
    paths = sorted(by_patient[chosen])
    start = (len(paths) - SLICES) // 2
    volume = np.stack(
        [
            cv2.imread(str(root / p), cv2.IMREAD_GRAYSCALE)
            for p in paths[start : start + SLICES]
        ]
    )
    return volume, "windowed8", f"ct-ich patient {chosen}, slices {start + 1}.."


def synthetic_study() -> tuple[np.ndarray, str, str]:
    from ml.synthetic import make_phantom

    phantom = make_phantom(label="hemorrhagic", size=512, slices=SLICES, seed=0)
    return phantom.volume_hu, "HU", "synthetic phantom (HU)"


def median_ms(volume: np.ndarray, units: str, repeat: int) -> tuple[float, list[float]]:
    """Median and all wall times in ms of ``repeat`` runs, after one warm-up."""
    brain_study(volume, units=units)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        brain_study(volume, units=units)
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times), times


def profile_top(volume: np.ndarray, units: str, count: int) -> str:
    """cProfile of one run: the ``count`` functions with the most own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    brain_study(volume, units=units)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(count)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--patient", type=int, help="ct-ich patient number")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    root = args.data / "ct-ich"
    if (root / "labels.csv").is_file():
        volume, units, name = ct_ich_study(root, args.patient)
    else:
        volume, units, name = synthetic_study()
    median, times = median_ms(volume, units, args.repeat)
    verdict = "meets" if median <= TARGET_MS else "misses"
    print(f"study: {name}, {volume.shape} {units}; {os.cpu_count()} CPU(s)")
    print(f"runs (ms): {', '.join(f'{t:.0f}' for t in times)}")
    print(
        f"brain_study: {median:.0f} ms per {SLICES}-slice study (median of "
        f"{args.repeat}), {median / SLICES:.1f} ms per slice; {verdict} the "
        f"{TARGET_MS:.0f} ms target"
    )
    if args.profile:
        print(profile_top(volume, units, args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
