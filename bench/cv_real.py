"""Grouped 5-fold CV of the model zoo on brain-stroke-ct, plus the leakage run.

    nohup .venv/bin/python bench/cv_real.py > var/cv_real.log 2>&1 &

Runs each experiment in its own subprocess (so ru_maxrss is per architecture and
memory is returned between runs), one after another, and writes
``bench/results/cv_<name>.json`` as each finishes, so partial results survive.
``--only NAME`` runs one experiment in this process. The data stay in
../shared/data; the manifest and the slice cache go to ``--work`` (outside the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "brain-stroke-ct"
RESULTS = REPO / "bench" / "results"

#: name → (architecture, preprocessing size, TrainConfig overrides). Sizes and
#: epochs fit a ~90-minute budget on 2 shared CPU cores (see docs/BENCHMARKS.md).
EXPERIMENTS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "custom_cnn": ("custom_cnn", 96, {"epochs": 8, "patience": 3}),
    "custom_cnn_random_slice": (
        "custom_cnn",
        96,
        {"epochs": 8, "patience": 3, "split_mode": "random_slice"},
    ),
    # Below: no early stop (patience = epochs); the best validation epoch is kept.
    # custom_cnn above stopped after 4-6 epochs on a noisy 10-scan validation part.
    "cnn_lstm": ("cnn_lstm", 96, {"epochs": 12, "patience": 12}),
    "mobilenet_v2": ("mobilenet_v2", 96, {"epochs": 5, "patience": 5}),
    "resnet_mobilenet_fusion": (
        "resnet_mobilenet_fusion",
        64,
        {"epochs": 3, "patience": 3, "steps_fraction": 0.5},
    ),
}


def _ensure_manifest(work: Path) -> Path:
    manifest = work / "manifest.csv"
    if not manifest.is_file():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "ml", "index", str(DATA), "--out", str(manifest)],
            cwd=REPO,
            check=True,
        )
    return manifest


def run_one(name: str, work: Path, seed: int) -> dict[str, Any]:
    """Train one experiment with grouped 5-fold CV; write and return its JSON."""
    sys.path.insert(0, str(REPO))
    from ml.preprocess import PreprocessConfig
    from ml.training import TrainConfig, train_model

    architecture, size, overrides = EXPERIMENTS[name]
    config = TrainConfig(
        architecture=architecture,
        preprocessing=PreprocessConfig(size=size, crop=True),
        cv=5,
        final_fit=False,
        seed=seed,
        cache_dir=str(work / "cache"),
        **overrides,
    )
    started = time.perf_counter()
    result = train_model(
        manifest=_ensure_manifest(work),
        data_root=DATA,
        config=config,
        out_dir=work / name,
    )
    summary = {
        "name": name,
        "architecture": architecture,
        "input_size": size,
        "config": config.to_dict(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "seconds_per_epoch": round(result.seconds_per_epoch, 2),
        "epochs_run": [len(f["history"]) for f in result.folds],
        "peak_rss_mb": round(result.peak_rss_mb, 1),
        "pooled": {
            level: {
                k: result.report[level][k]
                for k in (
                    "auc",
                    "accuracy",
                    "sensitivity",
                    "specificity",
                    "ece",
                    "ci95",
                    "confusion_matrix",
                    "n",
                )
            }
            for level in ("slice", "study")
        },
        "aggregation": result.report["aggregation"],
        "folds": result.folds,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"cv_{name}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {path}", flush=True)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(EXPERIMENTS))
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(EXPERIMENTS))
    default_work = Path(tempfile.gettempdir()) / "stroke-bench"
    parser.add_argument("--work", type=Path, default=default_work)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.only:
        run_one(args.only, args.work, args.seed)
        return 0
    _ensure_manifest(args.work)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for name in EXPERIMENTS:
        if name in args.skip:
            continue
        print(f"=== {name} ===", flush=True)
        command = [sys.executable, __file__, "--only", name, "--work", str(args.work)]
        done = subprocess.run(
            [*command, "--seed", str(args.seed)], env=env, check=False
        )
        print(f"=== {name} exit {done.returncode} ===", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
