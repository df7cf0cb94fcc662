"""``python -m ml demo-model``: train the synthetic-phantom demo model (ml.demo)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ml.cli import subcommand


@subcommand("demo-model")
def _register_demo_model(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo-model",
        help="train a small demo model on synthetic phantoms (a minute or two)",
        description=(
            "Generate head-CT phantoms, train a small CNN, evaluate it on held-out "
            "phantoms and write a model folder (model.json with demo: true)."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="new model folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a much smaller run (for tests): fewer phantoms and epochs",
    )
    parser.set_defaults(handler=_run_demo_model)


def _run_demo_model(args: argparse.Namespace) -> int:
    from ml.demo import DemoConfig, demo_model_train

    config = DemoConfig(seed=args.seed)
    if args.quick:
        config = DemoConfig(
            seed=args.seed, train_studies=24, val_studies=6, test_studies=9, epochs=2
        )

    def log(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    result = demo_model_train(out_dir=args.out, config=config, log=log)
    metrics = result.metrics
    study = metrics["study"]
    print(
        f"demo model written to {result.model_dir} in {result.total_seconds:.0f} s "
        f"(training {result.train_seconds:.0f} s)"
    )
    print(
        f"held-out phantoms: study AUC {metrics['study_auc']:.3f}, "
        f"slice AUC {metrics['slice_auc']:.3f}, "
        f"sensitivity {study.get('sensitivity', float('nan')):.3f}, "
        f"specificity {study.get('specificity', float('nan')):.3f}"
    )
    print(result.onnx)
    print(json.dumps({"model_dir": str(result.model_dir)}))
    return 0
