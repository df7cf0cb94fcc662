"""The evaluation that decides, for the lesion-feature model: cross-source first,
then grouped CV per source, shortcut checks and localisation on ct-ich.

    .venv/bin/python bench/lesion_eval.py            # ~6 min on 2 cores

Writes ``bench/results/lesion_eval.json`` and prints the Markdown tables that
docs/BENCHMARKS.md shows. The data stay in ../shared/data (skipped when absent).

- Cross-source: a model trained on all of brain-stroke-ct (scan labels, brain
  slices only) is saved as a model folder and run through the serving
  ``ml.inference.Predictor`` on every ct-ich patient (hemorrhage patients vs
  patients without); and a model trained on all of ct-ich (slice labels) is run
  on brain-stroke-ct (stroke scans vs normal scans).
- Grouped 5-fold CV by scan/patient within each source (thresholds chosen inside
  each training part), study and slice level, with 95 % bootstrap CIs over
  studies.
- Shortcut checks on the cross-source predictions: the AUC of image size alone
  (on the pooled test studies of both directions), the correlation of the score
  with image size and with the absolute grey level of the brain, and how much a
  ct-ich patient's probability moves when its slices are resized (384, 650 px)
  or brightened by 10 grey levels.
- Localisation on ct-ich bleed slices: the pointing game (the lesion map's peak
  on the slice lies inside the radiologist's mask dilated by 5 px), the share of
  the map's mass inside the dilated mask, and the Dice of the map above 0.3.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"

from ml.brain import BrainConfig  # noqa: E402
from ml.evaluation import evaluate_predictions, format_ci  # noqa: E402
from ml.evaluation.metrics import binary_metrics, roc_auc  # noqa: E402
from ml.lesion.train import (  # noqa: E402
    StudyFeatures,
    cross_validate,
    fit_lesion_model,
    load_studies,
    save_model_folder,
    study_from_volume,
)

C = 0.03
AGGREGATION, TOP_K = "topk", 5
BRAIN = BrainConfig()


def bsct_studies() -> tuple[list[StudyFeatures], list[Any]]:
    from ml.datasets import index_folder

    root = DATA / "brain-stroke-ct"
    rows = index_folder(root).rows
    return load_studies(rows, data_root=root, brain=BRAIN), rows


def ctich_table() -> dict[int, list[dict[str, str]]]:
    rows = list(csv.DictReader((DATA / "ct-ich" / "labels.csv").open()))
    patients: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        patients.setdefault(int(row["patient"]), []).append(row)
    for members in patients.values():
        members.sort(key=lambda r: int(r["slice"]))
    return patients


def ctich_volume(members: list[dict[str, str]], *, size: int | None = None):
    images = [cv2.imread(str(DATA / "ct-ich" / r["image"]), 0) for r in members]
    if size:
        images = [
            cv2.resize(i, (size, size), interpolation=cv2.INTER_AREA) for i in images
        ]
    return np.stack(images).astype(np.float32)


def ctich_studies(patients) -> list[StudyFeatures]:
    out = []
    for patient, members in sorted(patients.items()):
        slice_y = np.array([int(r["any_hemorrhage"]) for r in members])
        study, features = study_from_volume(
            ctich_volume(members), units="windowed8", brain=BRAIN
        )
        out.append(
            StudyFeatures(
                f"{patient:03d}", int(slice_y.max()), features, study.is_brain, slice_y
            )
        )
    return out


def fit(studies):
    return fit_lesion_model(
        studies, brain=BRAIN, regularisation=C, aggregation=AGGREGATION, top_k=TOP_K
    )


def report_of(y, prob, groups, study_prob, threshold) -> dict[str, Any]:
    return evaluate_predictions(
        y_true=y,
        prob=prob,
        groups=groups,
        threshold=threshold,
        study_prob=study_prob,
        n_boot=1000,
        seed=0,
    )


def slice_auc(studies, probs) -> float:
    """Slice AUC on brain slices with per-slice labels where known."""
    y = np.concatenate([s.labels()[s.is_brain] for s in studies])
    p = np.concatenate([pr[s.is_brain] for s, pr in zip(studies, probs, strict=True)])
    return roc_auc(y_true=y, prob=p)


# --- cross-source through the serving Predictor ------------------------------------


def _rows_for(studies):
    from ml.datasets import ManifestRow

    return [
        ManifestRow(f"{s.name}/x", "stroke" if s.label else "normal", s.name, "", "")
        for s in studies
    ]


def save(fitted, studies, folder: Path, name: str) -> Path:
    from ml.preprocess import PreprocessConfig
    from ml.training.config import TrainConfig

    config = TrainConfig(
        architecture="lesion_features",
        preprocessing=PreprocessConfig(size=BRAIN.size),
        aggregation=AGGREGATION,
        top_k=TOP_K,
        name=name,
    )
    return save_model_folder(
        fitted, rows=_rows_for(studies), config=config, report={}, folder=folder
    )


def serve_ctich(model_dir: Path, patients) -> dict[str, Any]:
    """Every ct-ich patient through Predictor.predict/explain (8-bit PNG, as
    uploaded), plus the pointing game on its bleed slices."""
    from ml.inference import Predictor
    from ml.io import load_study

    predictor = Predictor.load(model_dir)
    out: dict[str, Any] = {"patients": {}, "points": [], "timing_s": []}
    for patient, members in sorted(patients.items()):
        paths = [str(DATA / "ct-ich" / r["image"]) for r in members]
        result = load_study(paths)
        started = time.perf_counter()
        pred = predictor.predict(result)
        out["timing_s"].append((time.perf_counter() - started, len(paths)))
        label = max(int(r["any_hemorrhage"]) for r in members)
        out["patients"][f"{patient:03d}"] = {
            "label": label,
            "prob": pred.study_probability,
            "slices": [float(p) for p in pred.slice_probabilities],
            "slice_labels": [int(r["any_hemorrhage"]) for r in members],
            "median": float(np.median(result.volume[result.volume > 20])),
        }
        bleeds = [i for i, r in enumerate(members) if r["any_hemorrhage"] == "1"]
        maps = predictor.explain(result, slices=bleeds) if bleeds else {}
        for i in bleeds:
            mask = cv2.imread(str(DATA / "ct-ich" / members[i]["mask"]), 0) > 0
            out["points"].append(localisation(maps[i], mask, patient, i))
    return out


def localisation(heat: np.ndarray, mask: np.ndarray, patient: int, index: int):
    dilated = cv2.dilate(mask.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    total = float(heat.sum())
    if total <= 0:
        return {
            "patient": patient,
            "slice": index,
            "hit": False,
            "mass": 0.0,
            "dice": 0.0,
            "empty": True,
        }
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    above = heat >= 0.3 * float(heat.max())
    dice = 2 * float((above & mask).sum()) / float(above.sum() + mask.sum())
    return {
        "patient": patient,
        "slice": index,
        "hit": bool(dilated[y, x]),
        "mass": float(heat[dilated].sum() / total),
        "dice": dice,
        "empty": False,
    }


def serve_bsct(model_dir: Path, studies_rows) -> dict[str, Any]:
    from ml.inference import Predictor
    from ml.io import load_study

    predictor = Predictor.load(model_dir)
    root = DATA / "brain-stroke-ct"
    by_group: dict[str, list[Any]] = {}
    for row in studies_rows:
        by_group.setdefault(row.group, []).append(row)
    out = {}
    for group, members in sorted(by_group.items()):
        result = load_study([str(root / r.path) for r in members])
        pred = predictor.predict(result)
        out[group] = {
            "label": int(members[0].label.lower() != "normal"),
            "prob": pred.study_probability,
            "median": float(np.median(result.volume[result.volume > 20])),
            "size": int(result.volume.shape[1]),
        }
    return out


def invariance(model_dir: Path, patients, chosen: list[int]) -> dict[str, float]:
    """Mean |change| of the study probability when ct-ich patients are resized or
    brightened (a model that reads the brain should barely move)."""
    from ml.inference import Predictor
    from ml.io.types import LoadResult, StudyMetadata

    predictor = Predictor.load(model_dir)

    def prob(volume):
        meta = StudyMetadata(source_kind="image", units="windowed8")
        result = LoadResult(volume=volume, slices=[], metadata=meta, rejected=[])
        return predictor.predict(result).study_probability

    shifts: dict[str, list[float]] = {
        "resize_384": [],
        "resize_650": [],
        "bright_10": [],
    }
    for patient in chosen:
        base_volume = ctich_volume(patients[patient])
        base = prob(base_volume)
        shifts["resize_384"].append(
            abs(prob(ctich_volume(patients[patient], size=384)) - base)
        )
        shifts["resize_650"].append(
            abs(prob(ctich_volume(patients[patient], size=650)) - base)
        )
        shifts["bright_10"].append(abs(prob(np.clip(base_volume + 10, 0, 255)) - base))
    return {k: float(np.mean(v)) for k, v in shifts.items()}


def pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def summarise(section: dict[str, Any]) -> str:
    parts = [
        f"{name} {format_ci(section[name], section['ci95'][name])}"
        for name in ("auc", "sensitivity", "specificity")
    ]
    return ", ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "lesion_eval.json")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"no data at {DATA}: nothing to evaluate")
        return 0
    started = time.perf_counter()
    bsct, bsct_rows = bsct_studies()
    patients = ctich_table()
    ctich = ctich_studies(patients)
    print(f"features: {time.perf_counter() - started:.0f} s", flush=True)
    results: dict[str, Any] = {
        "config": {
            "C": C,
            "aggregation": AGGREGATION,
            "top_k": TOP_K,
            "brain": BRAIN.to_dict(),
        }
    }
    with tempfile.TemporaryDirectory() as work:
        # Cross-source, through the Predictor.
        bsct_model = fit(bsct)
        folder = save(bsct_model, bsct, Path(work) / "bsct", "lesion-bsct")
        served = serve_ctich(folder, patients)
        pats = served["patients"]
        names = sorted(pats)
        y = [pats[n]["label"] for n in names]
        p = [pats[n]["prob"] for n in names]
        slices_y = [v for n in names for v in pats[n]["slice_labels"]]
        slices_p = [v for n in names for v in pats[n]["slices"]]
        results["bsct_to_ctich"] = {
            "study": binary_metrics(y_true=y, prob=p, threshold=bsct_model.threshold),
            "report": report_of(
                y, p, names, dict(zip(names, p, strict=True)), bsct_model.threshold
            )["study"],
            "slice_auc_brain": slice_auc(
                ctich, [np.asarray(pats[s.name]["slices"]) for s in ctich]
            ),
            "slice_auc_all": roc_auc(y_true=slices_y, prob=slices_p),
            "threshold": bsct_model.threshold,
            "pointing": served["points"],
            "ms_per_slice": 1000
            * sum(t for t, _ in served["timing_s"])
            / sum(n for _, n in served["timing_s"]),
        }
        ctich_model = fit(ctich)
        folder2 = save(ctich_model, ctich, Path(work) / "ctich", "lesion-ctich")
        served_b = serve_bsct(folder2, bsct_rows)
        bn = sorted(served_b)
        by, bp = [served_b[n]["label"] for n in bn], [served_b[n]["prob"] for n in bn]
        results["ctich_to_bsct"] = {
            "study": binary_metrics(
                y_true=by, prob=bp, threshold=ctich_model.threshold
            ),
            "report": report_of(
                by, bp, bn, dict(zip(bn, bp, strict=True)), ctich_model.threshold
            )["study"],
            "threshold": ctich_model.threshold,
        }
        # Shortcut checks on the pooled cross-source test studies.
        sizes = [512] * len(names) + [served_b[n]["size"] for n in bn]
        pooled_y = y + by
        pooled_p = p + bp
        greys = [pats[n]["median"] for n in names] + [served_b[n]["median"] for n in bn]
        results["shortcuts"] = {
            "auc_image_size_alone": roc_auc(y_true=pooled_y, prob=sizes),
            "auc_model_pooled": roc_auc(y_true=pooled_y, prob=pooled_p),
            "corr_score_size": pearson(pooled_p, sizes),
            "corr_score_grey_ctich": pearson(p, [pats[n]["median"] for n in names]),
            "corr_score_grey_bsct": pearson(bp, [served_b[n]["median"] for n in bn]),
            "corr_score_grey_pooled": pearson(pooled_p, greys),
            # Within one class, so that a finding that changes the brain's grey
            # level (a large bleed) cannot make the correlation.
            "corr_score_grey_ctich_normal": pearson(
                [pats[n]["prob"] for n in names if not pats[n]["label"]],
                [pats[n]["median"] for n in names if not pats[n]["label"]],
            ),
            "corr_score_grey_bsct_normal": pearson(
                [served_b[n]["prob"] for n in bn if not served_b[n]["label"]],
                [served_b[n]["median"] for n in bn if not served_b[n]["label"]],
            ),
            "invariance": invariance(folder, patients, sorted(patients)[:12]),
        }
    # Grouped CV within each source.
    fitargs = {
        "brain": BRAIN,
        "regularisation": C,
        "aggregation": AGGREGATION,
        "top_k": TOP_K,
    }
    for name, studies in (("bsct_cv", bsct), ("ctich_cv", ctich)):
        pooled = cross_validate(studies, k=5, seed=0, **fitargs)
        report = report_of(
            pooled["y"], pooled["prob"], pooled["groups"], pooled["study_prob"], 0.5
        )
        slice_report = None
        if name == "ctich_cv":
            slice_report = ctich_slice_cv(studies, fitargs)
        results[name] = {
            "study": report["study"],
            "slice": report["slice"],
            "slice_labels_auc": slice_report,
        }
    results["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print_tables(results)
    return 0


def ctich_slice_cv(studies, fitargs) -> float:
    """ct-ich 5-fold CV by patient, slice AUC against the radiologist's slice labels
    on brain slices."""
    from ml.lesion.train import _folds

    ys, ps = [], []
    for held in _folds(studies, 5, 0):
        chosen = set(held)
        fitted = fit_lesion_model(
            [s for i, s in enumerate(studies) if i not in chosen], seed=0, **fitargs
        )
        for i in held:
            s = studies[i]
            if not s.is_brain.any():
                continue
            slice_p, _ = fitted.score(s)
            ys.append(s.labels()[s.is_brain])
            ps.append(slice_p[s.is_brain])
    return roc_auc(y_true=np.concatenate(ys), prob=np.concatenate(ps))


def print_tables(r: dict[str, Any]) -> None:
    b2c, c2b = r["bsct_to_ctich"], r["ctich_to_bsct"]
    points = list(b2c["pointing"])
    hits = [q["hit"] for q in points]
    print(
        "\n| trained on -> tested on | study AUC [95% CI], sensitivity, specificity at "
        "the stored threshold | slice AUC |"
    )
    print("|---|---|---|")
    print(
        f"| brain-stroke-ct -> ct-ich ({b2c['study']['n']} patients) | "
        f"{summarise(b2c['report'])} (threshold {b2c['threshold']:.3f}) | "
        f"{b2c['slice_auc_brain']:.3f} brain slices, {b2c['slice_auc_all']:.3f} all |"
    )
    print(
        f"| ct-ich -> brain-stroke-ct ({c2b['study']['n']} scans) | "
        f"{summarise(c2b['report'])} (threshold {c2b['threshold']:.3f}) | - |"
    )
    for name in ("bsct_cv", "ctich_cv"):
        sec = r[name]
        extra = sec["slice_labels_auc"]
        slice_text = f"{sec['slice']['auc']:.3f} (scan labels)"
        if extra is not None:
            slice_text = f"{extra:.3f} (radiologist's slice labels)"
        print(f"| {name} grouped 5-fold | {summarise(sec['study'])} | {slice_text} |")
    s = r["shortcuts"]
    print(
        f"\nshortcuts: image size alone AUC {s['auc_image_size_alone']:.3f} vs model "
        f"{s['auc_model_pooled']:.3f} (pooled cross-source studies); corr(score, size) "
        f"{s['corr_score_size']:.2f}; corr(score, brain grey level) ct-ich "
        f"{s['corr_score_grey_ctich']:.2f}, bsct {s['corr_score_grey_bsct']:.2f} "
        f"(normal studies only: ct-ich {s['corr_score_grey_ctich_normal']:.2f}, "
        f"bsct {s['corr_score_grey_bsct_normal']:.2f}); "
        f"mean |dp| {json.dumps({k: round(v, 3) for k, v in s['invariance'].items()})}"
    )
    read = [q["hit"] for q in points if not q["empty"]]
    mass = np.mean([q["mass"] for q in points])
    dice = np.mean([q["dice"] for q in points])
    empty = sum(q["empty"] for q in points)
    print(
        f"pointing game (bsct model on ct-ich bleed slices): {np.mean(hits):.3f} of "
        f"{len(hits)} ({empty} with an empty map, mostly slices not read; "
        f"{np.mean(read):.3f} of the {len(read)} with a map); map mass in mask "
        f"{mass:.3f}; "
        f"Dice {dice:.3f}; serving {b2c['ms_per_slice']:.1f} ms/slice"
    )
    print(f"total {r['seconds']:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
