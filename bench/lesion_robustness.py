"""How a lesion-feature model's ct-ich figures move when the slices arrive as other
hospitals' exports do: burned-in letters, a grey background, JPEG compression,
padding to a non-square image, a head rotated by 90 degrees, a smaller image.

    .venv/bin/python bench/lesion_robustness.py --model var/runs/lf-bsct/model

Every ct-ich patient (8-bit brain-window PNGs) goes through the serving Predictor
once as it is and once per variant. Prints the patient AUC per variant and the mean
|change| of the study probability against the original.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CT_ICH = REPO.parent / "shared" / "data" / "ct-ich"

from ml.evaluation.metrics import roc_auc  # noqa: E402
from ml.inference import Predictor  # noqa: E402
from ml.io.types import LoadResult, StudyMetadata  # noqa: E402


def letters(image: np.ndarray) -> np.ndarray:
    out = image.copy()
    for x, y in ((10, 30), (10, 500), (330, 30), (330, 500)):
        cv2.putText(
            out, "L  Ser:3 Img:12", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2
        )
    cv2.putText(out, "R", (20, 256), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2)
    return out


def grey_background(image: np.ndarray) -> np.ndarray:
    return np.where(image < 5, 60, image).astype(np.uint8)


def jpeg(image: np.ndarray) -> np.ndarray:
    _, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def padded(image: np.ndarray) -> np.ndarray:
    return cv2.copyMakeBorder(image, 0, 0, 128, 128, cv2.BORDER_CONSTANT, value=0)


def rotated(image: np.ndarray) -> np.ndarray:
    return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)


def smaller(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)


VARIANTS = {
    "as delivered": lambda image: image,
    "burned-in letters": letters,
    "grey background (60)": grey_background,
    "JPEG quality 75": jpeg,
    "padded to 768x512": padded,
    "rotated 90 degrees": rotated,
    "resized to 256 px": smaller,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    args = parser.parse_args()
    if not CT_ICH.is_dir():
        print(f"no data at {CT_ICH}")
        return 0
    predictor = Predictor.load(args.model)
    rows = list(csv.DictReader((CT_ICH / "labels.csv").open()))
    patients: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        patients.setdefault(row["patient"], []).append(row)
    labels, scores = [], {name: [] for name in VARIANTS}
    meta = StudyMetadata(source_kind="image", units="windowed8")
    for members in patients.values():
        members.sort(key=lambda r: int(r["slice"]))
        images = [cv2.imread(str(CT_ICH / r["image"]), 0) for r in members]
        labels.append(max(int(r["any_hemorrhage"]) for r in members))
        for name, change in VARIANTS.items():
            volume = np.stack([change(i) for i in images]).astype(np.float32)
            result = LoadResult(volume=volume, slices=[], metadata=meta)
            scores[name].append(predictor.predict(result).study_probability)
    base = np.asarray(scores["as delivered"])
    print("| export | patient AUC | mean abs change of the probability |")
    print("|---|---|---|")
    for name, values in scores.items():
        auc = roc_auc(y_true=labels, prob=values)
        change = float(np.mean(np.abs(np.asarray(values) - base)))
        print(f"| {name} | {auc:.3f} | {change:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
