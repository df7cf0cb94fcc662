"""The hemorrhage segmentation model on another source: every scan of a manifest
(brain-stroke-ct: stroke scans vs normal scans, no subtype labels) read like an
upload and scored by the Predictor the portal serves with.

    .venv/bin/python bench/seg_external.py --model models/ich-seg-ctich \\
        --manifest var/runs/bsct.csv --data-root ../shared/data/brain-stroke-ct \\
        --montage var/seg-bsct-flagged.png --out bench/results/seg_bsct.json

Prints the study AUC, how many stroke and normal scans the model flags at its
threshold, and how the score follows image size and grey level. ``--montage``
draws the most suspicious slice of every flagged scan with the model's outline, to
tell by eye which flagged strokes are bleeds (the data set does not say). The
montage holds the data's pixels: keep it out of the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _tile(load_result, maps: dict[int, np.ndarray], index: int, text: str):
    image = np.clip(load_result.volume[index], 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.resize(image, (256, 256)), cv2.COLOR_GRAY2BGR)
    outline = cv2.resize((maps[index] >= 0.5).astype(np.uint8), (256, 256))
    contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, (0, 255, 255), 1)
    cv2.putText(rgb, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 255), 1)
    return rgb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--montage", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from ml.datasets import read_manifest
    from ml.evaluation.metrics import roc_auc
    from ml.inference import OutsideModelScope, Predictor
    from ml.io import load_study
    from ml.lesion.train import label_value

    predictor = Predictor.load(args.model)
    by_group: dict[str, list] = {}
    for row in read_manifest(args.manifest):
        by_group.setdefault(row.group, []).append(row)
    rows, tiles = [], []
    for group, members in sorted(by_group.items()):
        result = load_study([str(args.data_root / r.path) for r in members])
        label = label_value(members[0].label)
        try:
            prediction = predictor.predict(result)
        except OutsideModelScope as exc:
            rows.append({"scan": group, "label": label, "outside": str(exc)})
            continue
        flagged = prediction.label == "stroke"
        brain = result.volume[result.volume > 30]
        rows.append(
            {
                "scan": group,
                "label": label,
                "prob": prediction.study_probability,
                "flagged": flagged,
                "side": int(result.volume.shape[-1]),
                "grey": float(np.median(brain)) if brain.size else 0.0,
            }
        )
        if flagged and args.montage:
            top = int(prediction.top_slices[0])
            maps = predictor.explain(result, slices=[top])
            kind = "STROKE" if label else "normal"
            text = f"{group} {kind} p={prediction.study_probability:.2f}"
            tiles.append(_tile(result, maps, top, text))
        print(
            f"{group}: label {label} p {prediction.study_probability:.3f}", flush=True
        )
    scored = [r for r in rows if "prob" in r]
    y = np.array([r["label"] for r in scored])
    p = np.array([r["prob"] for r in scored])
    summary = {
        "model": str(args.model),
        "scans": len(rows),
        "outside_scope": sum("outside" in r for r in rows),
        "study_auc": roc_auc(y_true=y, prob=p),
        "stroke_scans": int((y == 1).sum()),
        "stroke_flagged": int(sum(r["flagged"] for r in scored if r["label"] == 1)),
        "normal_scans": int((y == 0).sum()),
        "normal_flagged": int(sum(r["flagged"] for r in scored if r["label"] == 0)),
        "threshold": float(predictor.card.threshold),
        "corr_prob_grey_normals": float(
            np.corrcoef(p[y == 0], [r["grey"] for r in scored if r["label"] == 0])[0, 1]
        ),
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))
    if args.montage and tiles:
        per_row = 6
        blank = np.zeros_like(tiles[0])
        tiles += [blank] * (-len(tiles) % per_row)
        grid = [
            np.hstack(tiles[i : i + per_row]) for i in range(0, len(tiles), per_row)
        ]
        args.montage.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.montage), np.vstack(grid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
