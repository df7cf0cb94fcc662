"""``python -m ml train``, ``evaluate`` and ``leakage``.

Handlers import TensorFlow lazily (``train``, ``leakage`` and ``evaluate --model``
need it; ``evaluate --predictions`` does not).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from ml.cli import subcommand


def _add_data_args(parser: Any, *, required: bool = True, cache: bool = True) -> None:
    parser.add_argument(
        "--manifest", type=Path, required=required, help="manifest CSV (from index)"
    )
    parser.add_argument(
        "--data-root", type=Path, required=required, help="folder the paths start in"
    )
    if cache:
        parser.add_argument(
            "--cache-dir",
            type=Path,
            help="where preprocessed slices are cached (default $ML_CACHE_DIR or "
            "~/.cache/stroke-portal-ml)",
        )


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

TRAIN_DESCRIPTION = """\
Train a model on a manifest (from `python -m ml index`) and save it.

Splits are by scan (manifest group, merged with its duplicates), never by slice:
  --cv 0 (default)  one split: 70% of the scans to train, 15% for validation
                    (early stopping, threshold, temperature) and 15% held out as
                    a test split, whose figures go into model.json
  --cv K            K-fold cross-validation (the report), then a final model on
                    all scans but a validation part (unless --no-final)
  --final-only      one model on every scan but the validation part: no test
                    split, no CV, so no figures; judge it with `evaluate` on
                    data it has not seen

Writes:
  OUT/report.json   the held-out evaluation (test split or pooled CV folds),
                    the configuration and per-epoch history
  OUT/model/        the model folder to activate in the portal: model.keras,
                    model.json (threshold on the study probability, temperature,
                    metrics, preprocessing), model.onnx when its export matches
                    Keras, classifier.joblib for cnn_svm/cnn_rf;
                    lesion_model.json (features, weights) for lesion_features
  --cache-dir       preprocessed slices, reused by later runs

--architecture lesion_features trains the interpretable lesion-feature model:
hyperdensity and asymmetry features of the aligned brain (ml.brain) and a
logistic regression, on brain slices only; seconds, not epochs. --size is the
aligned brain's side (256 recommended); --option C=0.1 sets its regularisation.
"""


@subcommand("train")
def _register_train(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a manifest (grouped CV or a grouped split)",
        description=TRAIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _add_data_args(parser)
    parser.add_argument(
        "--out", type=Path, required=True, help="run folder (report.json, model/)"
    )
    _add_train_args(parser)
    parser.add_argument(
        "--cv",
        type=int,
        default=0,
        help="K folds; 0 = one split that holds out 15%% of the scans as a test split",
    )
    final = parser.add_mutually_exclusive_group()
    final.add_argument("--no-final", action="store_true", help="CV only, no model")
    final.add_argument(
        "--final-only",
        action="store_true",
        help="one model trained on every scan but the validation part "
        "(no test split, no CV)",
    )
    parser.add_argument(
        "--target-sensitivity",
        type=float,
        default=0.95,
        help="the study threshold is set for this sensitivity on the validation scans",
    )
    parser.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from ml.training import train_model

    if args.final_only and args.cv:
        raise ValueError("--final-only trains no CV folds; drop --cv")
    config = _config(
        args,
        cv=args.cv,
        final_fit=not args.no_final,
        target_sensitivity=args.target_sensitivity,
        **({"test_fraction": 0.0} if args.final_only else {}),
    )
    result = train_model(
        manifest=args.manifest,
        data_root=args.data_root,
        config=config,
        out_dir=args.out,
    )
    if result.cancelled:
        print("training was cancelled; no model saved")
        return 1
    _print_summary(result.report)
    if not result.report:
        print("no held-out test: evaluate the model with `python -m ml evaluate`")
    rss = result.peak_rss_mb
    if config.architecture == "lesion_features":
        print(f"features and fit in {result.seconds_per_epoch:.0f} s (no epochs)")
    else:
        print(f"{result.seconds_per_epoch:.1f} s/epoch, peak memory {rss:.0f} MiB")
    if result.model_dir:
        _print_model_thresholds(result.model_dir)
        print(f"model: {result.model_dir}")
    print(f"report: {result.out_dir / 'report.json'}")
    return 0


def _print_model_thresholds(model_dir: Path) -> None:
    from ml.modelfile import model_card_load

    card = model_card_load(model_dir)
    target = card.extra.get("target_sensitivity")
    chosen = f" for sensitivity {target:g}" if target else ""
    where = (
        "out-of-fold predictions of the training scans"
        if card.architecture == "lesion_features"
        else "the validation scans"
    )
    print(
        f"study threshold {card.threshold:.3g} (on the study probability, chosen on "
        f"{where}{chosen}; stored in model.json)"
    )


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

EVALUATE_DESCRIPTION = """\
Judge a model (or a CSV of predictions) on labelled data.

  --model M --data FOLDER       a folder of class folders (Normal/, Stroke/, any
                                case, as `index` reads); it is indexed here
  --model M --manifest CSV --data-root FOLDER
                                an existing manifest
  --predictions CSV             columns group,label,prob (label 0/1 or a class)

A model runs through the Predictor the portal serves with: each scan (manifest
group) is read like an upload of its files and scored by the model's own rule,
at the model file's threshold on the study probability (or --threshold).

Writes:
  OUT/metrics.json   slice and study metrics with bootstrap CIs over studies
  OUT/report.html    the same with ROC, precision-recall, calibration and
                     confusion plots (also OUT/*.png)
  OUT/manifest.csv   with --data: the index that was evaluated
"""


@subcommand("evaluate")
def _register_evaluate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="metrics, CIs, plots and an HTML page for a model or a predictions CSV",
        description=EVALUATE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the report files"
    )
    parser.add_argument("--model", type=Path, help="model folder or zip")
    parser.add_argument(
        "--data", type=Path, help="folder of class folders to index and evaluate"
    )
    parser.add_argument(
        "--group-regex", help="with --data: the scan rule of `index --group-regex`"
    )
    parser.add_argument("--predictions", type=Path, help="CSV of slice predictions")
    _add_data_args(parser, required=False, cache=False)
    parser.add_argument(
        "--threshold",
        type=float,
        help="study threshold; default: the model file's, or 0.5 for --predictions",
    )
    parser.add_argument(
        "--aggregation",
        choices=("mean", "max", "topk"),
        default="topk",
        help="--predictions only (a model uses its own rule)",
    )
    parser.add_argument(
        "--top-k", type=int, default=5, help="--predictions only, with topk"
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples")
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


def _evaluation_rows(args: argparse.Namespace) -> tuple[Any, Path]:
    """(manifest rows or CSV path, data root) of ``evaluate --model``; exactly one
    of --data and --manifest/--data-root."""
    manifest_given = bool(args.manifest or args.data_root)
    if bool(args.data) == manifest_given:
        raise ValueError(
            "--model needs exactly one of --data FOLDER (class folders, indexed "
            "here) and --manifest CSV with --data-root FOLDER"
        )
    if args.data:
        from ml import datasets

        index = datasets.index_folder(args.data, group_regex=args.group_regex)
        args.out.mkdir(parents=True, exist_ok=True)
        datasets.write_manifest(index.rows, args.out / "manifest.csv")
        for warning in index.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return index.rows, args.data
    if not (args.manifest and args.data_root):
        raise ValueError("--manifest and --data-root go together")
    if args.group_regex:
        raise ValueError("--group-regex applies to --data; the manifest has groups")
    return args.manifest, args.data_root


def _predict_model(args: argparse.Namespace) -> dict[str, Any]:
    from ml.training.predict import predict_manifest

    manifest, root = _evaluation_rows(args)
    data = predict_manifest(
        model_dir=args.model,
        manifest=manifest,
        data_root=root,
        progress=_study_progress,
    )
    studies, slices = len(data["study_prob"]), len(data["prob"])
    print(f"scored {studies} studies ({slices} slices) on {data['backend']}")
    if data["set_aside"]:
        name, reason = data["set_aside"][0]
        count = len(data["set_aside"])
        print(f"set aside {count} file(s) as an upload would (e.g. {name}: {reason})")
    return data


def _study_progress(done: int, total: int) -> None:
    if done == total or done % 10 == 0:
        print(f"  {done}/{total} studies", flush=True)


def _threshold_source(args: argparse.Namespace) -> str:
    if args.threshold is not None:
        return "from --threshold"
    return "from the model file" if args.model else "default"


def _run_evaluate(args: argparse.Namespace) -> int:
    from ml.evaluation import evaluate_predictions, report_write

    if bool(args.model) == bool(args.predictions):
        raise ValueError("give exactly one of --model and --predictions")
    if args.model:
        data = _predict_model(args)
    else:
        if args.data or args.manifest or args.data_root:
            raise ValueError("--predictions takes no --data, --manifest or --data-root")
        data = _read_predictions(args.predictions)
    threshold = args.threshold if args.threshold is not None else data["threshold"]
    slice_threshold = None if args.threshold is not None else data["slice_threshold"]
    report = evaluate_predictions(
        y_true=data["y"],
        prob=data["prob"],
        groups=data["groups"],
        threshold=threshold,
        slice_threshold=slice_threshold,
        study_prob=data["study_prob"],
        aggregation=args.aggregation,
        top_k=args.top_k,
        n_boot=args.bootstrap,
    )
    page = report_write(
        report=report, y_slices=data["y"], p_slices=data["prob"], out_dir=args.out
    )
    source = _threshold_source(args)
    print(f"study threshold {threshold:.3g} on the study probability ({source})")
    if slice_threshold is not None:
        print(f"slice threshold {slice_threshold:.3g} ({source})")
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
        allow_abbrev=False,
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
