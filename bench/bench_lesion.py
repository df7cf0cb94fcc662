"""Speed of the lesion-feature model per slice, beside the brain-aware
preprocessing it reads, on one 30-slice 512x512 study.

    .venv/bin/python bench/bench_lesion.py [--repeat 5]

The study is the middle 30 slices of ct-ich patient 50 when ../shared/data is
there (8-bit brain-window PNGs), else a synthetic HU phantom. Prints the median of
``--repeat`` runs after a warm-up: ``brain_study`` per study (target 300 ms), the
features and the logistic regression per slice (target 5 ms), the lesion map per
slice (drawn for the shown slices only), and the load average, since the machine's
2 cores are shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "ct-ich" / "images" / "050"

from ml.brain import brain_study  # noqa: E402
from ml.lesion.features import FEATURE_NAMES, lesion_map  # noqa: E402
from ml.lesion.model import LesionModel, sigmoid, study_features  # noqa: E402


def study_volume() -> tuple[np.ndarray, str]:
    files = sorted(DATA.glob("*.png"))
    if len(files) >= 30:
        middle = len(files) // 2
        chosen = files[middle - 15 : middle + 15]
        return np.stack([cv2.imread(str(f), 0) for f in chosen]).astype(
            np.float32
        ), "windowed8"
    from ml import synthetic

    phantom = synthetic.make_phantom(label="hemorrhagic", size=512, slices=30, seed=1)
    return phantom.volume.astype(np.float32), "HU"


def timed(func, repeat: int) -> float:
    func()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    volume, units = study_volume()
    study = brain_study(volume, units=units)
    n = len(FEATURE_NAMES)
    model = LesionModel(
        feature_names=list(FEATURE_NAMES),
        mean=np.zeros(n),
        scale=np.ones(n),
        coef=np.full(n, 0.1),
        intercept=0.0,
        brain=study.config,
    )
    brain_s = timed(lambda: brain_study(volume, units=units), args.repeat)
    feats_s = timed(lambda: study_features(study.slices), args.repeat)
    raw = study_features(study.slices)
    lr_s = timed(lambda: sigmoid(model.logits(raw)), args.repeat)
    map_s = timed(lambda: [lesion_map(s) for s in study.slices], args.repeat)
    d = len(volume)
    print(f"study {volume.shape} {units}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"brain_study: {1000 * brain_s:.0f} ms per study "
        f"({1000 * brain_s / d:.1f} ms/slice)"
    )
    print(
        f"lesion model (features + logistic regression): "
        f"{1000 * (feats_s + lr_s) / d:.1f} ms/slice "
        f"(features {1000 * feats_s / d:.1f}, regression {1000 * lr_s / d:.3f})"
    )
    print(f"lesion map: {1000 * map_s / d:.1f} ms/slice")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
