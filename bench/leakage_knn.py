"""Leakage in seconds: a 5-nearest-neighbour classifier on 24x24 thumbnails of the
brain-stroke-ct slices, 5-fold CV with a random slice split vs a grouped split.

A neighbouring slice of the same scan is the nearest neighbour of almost every
slice, so a random slice split scores what the scan looks like, not the lesion.
Needs the slice cache that bench/cv_real.py builds (96 px).

    .venv/bin/python bench/leakage_knn.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "brain-stroke-ct"
WORK = Path(tempfile.gettempdir()) / "stroke-bench"


def main() -> int:
    sys.path.insert(0, str(REPO))
    from sklearn.neighbors import KNeighborsClassifier

    from ml.datasets import grouped_kfold, read_manifest
    from ml.evaluation import evaluate_predictions, leakage_markdown, leakage_report
    from ml.preprocess import PreprocessConfig
    from ml.training.data import slice_cache

    rows = read_manifest(WORK / "manifest.csv")
    cache = slice_cache(
        rows=rows,
        data_root=DATA,
        config=PreprocessConfig(size=96, crop=True),
        cache_dir=WORK / "cache",
    )
    thumbs = np.asarray(cache[..., 0]).reshape(len(rows), 24, 4, 24, 4).mean((2, 4))
    x = thumbs.reshape(len(rows), -1)
    y = np.array([int(r.label != "normal") for r in rows])
    groups = [r.group for r in rows]
    reports = {}
    for mode in ("grouped", "random_slice"):
        split_rows = (
            rows
            if mode == "grouped"
            else [replace(r, split_group=r.path) for r in rows]
        )
        prob = np.zeros(len(rows))
        for fold in grouped_kfold(split_rows, k=5, seed=0):
            knn = KNeighborsClassifier(n_neighbors=5).fit(
                x[list(fold.train)], y[list(fold.train)]
            )
            prob[list(fold.val)] = knn.predict_proba(x[list(fold.val)])[:, 1]
        reports[mode] = evaluate_predictions(
            y_true=y, prob=prob, groups=groups, threshold=0.5, n_boot=500
        )
    table = leakage_report(
        grouped=reports["grouped"], random_split=reports["random_slice"]
    )
    out = REPO / "bench" / "results" / "leakage_knn.json"
    out.write_text(json.dumps(table, indent=2) + "\n")
    print(leakage_markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
