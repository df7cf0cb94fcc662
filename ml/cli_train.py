"""``python -m ml train``, ``evaluate`` and ``leakage``.

Handlers import TensorFlow lazily (``train``, ``leakage`` and ``evaluate --model``
need it; ``evaluate --predictions`` does not).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from ml.cli import subcommand


def _add_data_args(parser: Any, *, required: bool = True) -> None:
    parser.add_argument("--manifest", type=Path, required=required, help="manifest CSV")
    parser.add_argument(
        "--data-root", type=Path, required=required, help="folder the paths start in"
    )
    parser.add_argument("--cache-dir", type=Path, help="preprocessed-slice cache")


def _add_train_args(parser: Any) -> None:
    from ml.models import ARCHITECTURES

    parser.add_argument(
        "--architecture", choices=sorted(ARCHITECTURES), default="custom_cnn"
    )
    parser.add_argument("--task", choices=("binary", "type"), default="binary")
    parser.add_argument("--size", type=int, default=128, help="input side, pixels")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--window", default="brain", help="window preset or 'multi'")
    parser.add_argument("--brain", action="store_true", help="aligned, skull-stripped")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--steps-fraction", type=float, default=1.0)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--weights", help="user-supplied Keras weights file")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="architecture option, e.g. --option rnn='\"gru\"' --option alpha=0.5",
    )


def _config(args: argparse.Namespace, **overrides: Any) -> Any:
    from ml.preprocess import PreprocessConfig
    from ml.training import TrainConfig

    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--option {item!r}: value is not JSON ({exc})") from exc
    values = {
        "architecture": args.architecture,
        "task": args.task,
        "preprocessing": PreprocessConfig(
            size=args.size,
            channels=args.channels,
            window=args.window,
            brain=args.brain,
        ),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "steps_fraction": args.steps_fraction,
        "patience": args.patience,
        "seed": args.seed,
        "model_options": options,
        "weights_path": args.weights,
        "cache_dir": str(args.cache_dir) if args.cache_dir else None,
    }
    if args.no_augment:
        values["augment"] = None
    return TrainConfig(**{**values, **overrides})


# --- train ------------------------------------------------------------------------


@subcommand("train")
def _register_train(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a manifest (grouped CV or a grouped split)",
        description="Writes OUT/report.json and the model folder OUT/model.",
    )
    _add_data_args(parser)
    parser.add_argument("--out", type=Path, required=True)
    _add_train_args(parser)
    parser.add_argument("--cv", type=int, default=0, help="k folds; 0 = one split")
    parser.add_argument("--no-final", action="store_true", help="CV only, no model")
    parser.add_argument("--target-sensitivity", type=float, default=0.95)
    parser.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from ml.training import train_model

    config = _config(
        args,
        cv=args.cv,
        final_fit=not args.no_final,
        target_sensitivity=args.target_sensitivity,
    )
    result = train_model(
        manifest=args.manifest,
        data_root=args.data_root,
        config=config,
        out_dir=args.out,
    )
    _print_summary(result.report)
    rss = result.peak_rss_mb
    print(f"{result.seconds_per_epoch:.1f} s/epoch, peak memory {rss:.0f} MiB")
    if result.model_dir:
        print(f"model: {result.model_dir}")
    return 0


def _print_summary(report: dict[str, Any]) -> None:
    from ml.evaluation import format_ci

    for level in ("slice", "study"):
        section = report.get(level)
        if not section:
            continue
        parts = [
            f"{name} {format_ci(section[name], section['ci95'][name])}"
            for name in ("auc", "sensitivity", "specificity")
        ]
        print(f"{level}: " + ", ".join(parts))


# --- evaluate ---------------------------------------------------------------------


@subcommand("evaluate")
def _register_evaluate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="metrics, CIs, plots and an HTML page for a model or a predictions CSV",
        description=(
            "Either --model with --manifest/--data-root (runs the model), or "
            "--predictions CSV with columns group,label,prob (label 0/1 or a class "
            "name). Writes OUT/metrics.json, PNG plots and OUT/report.html."
        ),
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="model folder")
    parser.add_argument("--predictions", type=Path, help="CSV of slice predictions")
    _add_data_args(parser, required=False)
    parser.add_argument("--threshold", type=float, help="default: the model's, or 0.5")
    parser.add_argument(
        "--aggregation", choices=("mean", "max", "topk"), default="topk"
    )
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.set_defaults(handler=_run_evaluate)


def _read_predictions(path: Path) -> dict[str, Any]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"group", "label", "prob"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path.name} lacks columns {sorted(missing)}")
        rows = list(reader)
    y = [0 if r["label"] in ("0", "normal") else 1 for r in rows]
    return {
        "y": y,
        "prob": [float(r["prob"]) for r in rows],
        "groups": [r["group"] for r in rows],
        "study_prob": None,
        "threshold": 0.5,
        "slice_threshold": None,
    }


def _run_evaluate(args: argparse.Namespace) -> int:
    from ml.evaluation import evaluate_predictions, report_write

    if bool(args.model) == bool(args.predictions):
        raise ValueError("give exactly one of --model and --predictions")
    if args.model:
        if not (args.manifest and args.data_root):
            raise ValueError("--model needs --manifest and --data-root")
        from ml.training.predict import predict_manifest

        data = predict_manifest(
            model_dir=args.model,
            manifest=args.manifest,
            data_root=args.data_root,
            cache_dir=args.cache_dir,
        )
    else:
        data = _read_predictions(args.predictions)
    threshold = args.threshold if args.threshold is not None else data["threshold"]
    report = evaluate_predictions(
        y_true=data["y"],
        prob=data["prob"],
        groups=data["groups"],
        threshold=threshold,
        slice_threshold=None if args.threshold is not None else data["slice_threshold"],
        study_prob=data["study_prob"],
        aggregation=args.aggregation,
        top_k=args.top_k,
        n_boot=args.bootstrap,
    )
    page = report_write(
        report=report, y_slices=data["y"], p_slices=data["prob"], out_dir=args.out
    )
    _print_summary(report)
    print(f"report: {page}")
    return 0


# --- leakage ----------------------------------------------------------------------


@subcommand("leakage")
def _register_leakage(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "leakage",
        help="the same model with a random slice split vs a grouped split",
        description=(
            "Trains the model twice with k-fold CV, once splitting by scan and once "
            "splitting slices at random, and writes OUT/leakage.json and "
            "OUT/leakage.md. With --reports GROUPED RANDOM it only compares two "
            "existing report.json / bench result files."
        ),
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reports", nargs=2, type=Path, metavar=("GROUPED", "RANDOM"))
    _add_data_args(parser, required=False)
    _add_train_args(parser)
    parser.add_argument("--cv", type=int, default=5)
    parser.set_defaults(handler=_run_leakage)


def _load_report(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("report", "pooled"):
        if key in data:
            return data[key]
    if "slice" in data and "study" in data:
        return data
    raise ValueError(f"{path.name} holds no evaluation report")


def _run_leakage(args: argparse.Namespace) -> int:
    from ml.evaluation import leakage_markdown, leakage_report

    if args.reports:
        grouped, random_split = (_load_report(p) for p in args.reports)
    else:
        if not (args.manifest and args.data_root):
            raise ValueError("give --manifest and --data-root, or --reports")
        from ml.training import train_model

        reports = {}
        for mode in ("grouped", "random_slice"):
            config = _config(args, cv=args.cv, final_fit=False, split_mode=mode)
            reports[mode] = train_model(
                manifest=args.manifest,
                data_root=args.data_root,
                config=config,
                out_dir=args.out / mode,
            ).report
        grouped, random_split = reports["grouped"], reports["random_slice"]
    table = leakage_report(grouped=grouped, random_split=random_split)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "leakage.json").write_text(json.dumps(table, indent=2) + "\n")
    markdown = leakage_markdown(table)
    (args.out / "leakage.md").write_text(markdown + "\n")
    print(markdown)
    return 0
