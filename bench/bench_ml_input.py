"""Benchmark of ml's input side: dataset indexing, study loading, preprocessing.

    .venv/bin/python bench/bench_ml_input.py [--data ../shared/data] [--repeat 3]

Prints a Markdown table. Uses ../shared/data when present: brain-stroke-ct for the
index and a 30-file JPG scan, dicom-head-phantom/std-brain-5mm for a 28-slice
512x512 CT series; without it, a synthetic 28x512x512 phantom written as DICOM stands
in and the JPG rows are skipped. Loading is timed with ``ml.io.load_study`` when that
exists, otherwise only preprocessing is timed (and the table says so).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml.preprocess import PreprocessConfig, preprocess_volume  # noqa: E402

CONFIGS = {
    "brain 224, crop": PreprocessConfig(size=224),
    "multi-window 224, crop, CLAHE, median": PreprocessConfig(
        size=224, window="multi", channels=3, clahe=True, denoise="median"
    ),
}


def _best_of(repeat: int, func: Callable[[], Any]) -> tuple[float, Any]:
    """Median wall time of ``repeat`` runs (after one warm-up) and the last result."""
    result = func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _loader() -> Callable[[list[Path]], Any] | None:
    try:
        from ml.io import load_study
    except ImportError:
        return None
    return load_study


def _bench_index(data: Path) -> list[str]:
    from ml.datasets import class_counts, index_folder

    root = data / "brain-stroke-ct"
    if not root.is_dir():
        return ["| index brain-stroke-ct | skipped: folder absent | | |"]
    start = time.perf_counter()
    result = index_folder(root, workers=2)
    wall = time.perf_counter() - start
    counts = class_counts(result.rows)
    detail = ", ".join(f"{k} {v[0]} img / {v[1]} scans" for k, v in counts.items())
    rate = len(result.rows) / wall
    return [f"| index brain-stroke-ct ({detail}) | {wall:.1f} s | {rate:.0f} img/s | |"]


def _ct_series(data: Path, workdir: Path) -> tuple[str, list[Path]]:
    real = data / "dicom-head-phantom" / "std-brain-5mm"
    if real.is_dir():
        files = sorted(p for p in real.iterdir() if p.is_file())
        return "28x512x512 CT DICOM (std-brain-5mm)", files
    from ml.synthetic import make_phantom, write_dicom_series

    phantom = make_phantom(label="hemorrhagic", size=512, slices=28, seed=0)
    return "28x512x512 synthetic CT DICOM", write_dicom_series(phantom, workdir)


def _jpg_scan(data: Path) -> tuple[str, list[Path]] | None:
    folder = data / "brain-stroke-ct" / "Normal"
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("100 (*).jpg"))
    return f"{len(files)}-file JPG scan (brain-stroke-ct scan 100)", files


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _volume_rows(name: str, files: list[Path], repeat: int) -> list[str]:
    load = _loader()
    if load is None:
        return [_row(name, "ml.io.load_study missing: loading not timed", "", "")]
    load_s, result = _best_of(repeat, lambda: load(files))
    volume, units = result.volume, result.metadata.units
    per_slice = 1e3 / len(volume)
    rows = [
        _row(f"{name}: load ({units})", f"{load_s * per_slice:.1f} ms/slice", "", "")
    ]
    for label, config in CONFIGS.items():
        prep_s, _ = _best_of(
            repeat, lambda c=config: preprocess_volume(volume, units=units, config=c)
        )
        total = f"{(load_s + prep_s) * per_slice:.1f} ms/slice"
        prep = f"{prep_s * per_slice:.1f} ms/slice"
        rows.append(_row(f"{name}: preprocess {label}", prep, "", total))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"numpy {np.__version__}; medians of {args.repeat} runs after a warm-up\n")
    print("| step | time | throughput | load + preprocess |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as workdir:
        for row in _bench_index(args.data):
            print(row, flush=True)
        name, files = _ct_series(args.data, Path(workdir))
        for row in _volume_rows(name, files, args.repeat):
            print(row, flush=True)
        scan = _jpg_scan(args.data)
        rows = (
            _volume_rows(*scan, args.repeat)
            if scan
            else ["| JPG scan | skipped: folder absent | | |"]
        )
        for row in rows:
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
