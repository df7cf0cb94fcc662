"""``python -m ml train-seg``: cross-validate and train the hemorrhage
segmentation model on a mask manifest (ct-ich's ``labels.csv``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ml.cli import subcommand

DESCRIPTION = """\
Train the hemorrhage segmentation model on slices with pixel masks.

DATA is a folder holding labels.csv (or the CSV itself) with one row per slice and
the columns image, mask (paths relative to the CSV) and patient (or group); every
patient is one study. With --cv K (default 5) every patient is scored once by a
network that never saw them, the slice temperature and the study threshold are
chosen on those scores, and --report gets the figures; then the final network is
trained on every patient and written to --out (model.keras, model.onnx, model.json).

The default model shipped with the project was made with:
  python -m ml train-seg --data ../shared/data/ct-ich --out models/ich-seg-ctich \\
      --report docs/results/ich_seg_cv.json --cache var/cache --epochs 30 \\
      --min-specificity 0.5
"""


@subcommand("train-seg")
def _register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train-seg",
        help="train the hemorrhage segmentation model on slices with masks",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="labels.csv or its folder"
    )
    parser.add_argument("--out", type=Path, help="model folder (omit: CV only)")
    parser.add_argument("--report", type=Path, help="JSON report of the CV")
    parser.add_argument("--cache", type=Path, help="folder for the aligned slices")
    parser.add_argument("--cv", type=int, default=5, help="folds by patient; 0 = none")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--samples", type=int, default=1200, help="slices per epoch")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--base-filters", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--target-sensitivity",
        type=float,
        default=0.95,
        help="the study threshold is the highest whose out-of-fold sensitivity "
        "reaches this (or the highest sensitivity below it that --min-specificity "
        "allows)",
    )
    parser.add_argument(
        "--min-specificity",
        type=float,
        default=0.5,
        help="the study threshold keeps the out-of-fold study specificity at "
        "least this (default 0.5, the promotion gate's PROMOTION_MIN_SPECIFICITY: "
        "below it false alarms bury the bleeds on the worklist; 0 = no floor); "
        "training stops with an error, before the final network, when no "
        "threshold does",
    )
    parser.add_argument("--name", default="ich-seg-ctich")
    parser.add_argument("--version", default="1")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ml.segment.train import SegTrainConfig, seg_train

    if args.out is None and args.cv < 2:
        print("nothing to do: give --out, or --cv of at least 2", flush=True)
        return 2
    cfg = SegTrainConfig(
        name=args.name,
        version=args.version,
        size=args.size,
        base_filters=args.base_filters,
        epochs=args.epochs,
        samples_per_epoch=args.samples,
        cv=args.cv,
        seed=args.seed,
        target_sensitivity=args.target_sensitivity,
        min_specificity=args.min_specificity,
    )
    try:
        report = seg_train(
            data_dir=args.data,
            out_dir=args.out,
            cfg=cfg,
            cache_dir=args.cache,
            report_path=args.report,
            log=lambda line: print(line, flush=True),
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", flush=True)
        return 1
    cv = report.get("cv")
    if cv:
        local = cv["localisation"]
        print(
            f"CV: patient AUC {cv['study']['auc']:.3f}, slice AUC "
            f"{cv['slice']['auc']:.3f}, sensitivity {cv['study']['sensitivity']:.2f}, "
            f"specificity {cv['study']['specificity']:.2f} "
            f"at {report['threshold']:.3f}; "
            f"Dice {local['dice_mean']:.3f}, pointing {local['pointing']:.3f}, "
            f"volume error median {local['volume_abs_error_ml_median']:.1f} mL",
            flush=True,
        )
    if args.out is not None:
        print(f"model written to {args.out}", flush=True)
    return 0
