"""Command line of the ml library: ``python -m ml <subcommand> ...``.

Each subcommand is a *registrar* in ``SUBCOMMANDS``: a function that adds its parser
to the subparsers and sets ``handler`` (called with the parsed arguments, returning
an exit code). A new subcommand (train, evaluate, demo-model) is one more function
decorated with ``@subcommand("name")`` in a module imported below. Handlers import
their heavy dependencies lazily, so ``python -m ml --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Registrar = Callable[[Any], None]  # receives argparse's subparsers action
SUBCOMMANDS: dict[str, Registrar] = {}
EXIT_FAILURE, EXIT_USAGE = 1, 2


def subcommand(name: str) -> Callable[[Registrar], Registrar]:
    """Register ``func(subparsers)`` as the registrar of subcommand ``name``."""

    def register(func: Registrar) -> Registrar:
        if name in SUBCOMMANDS:
            raise ValueError(f"subcommand {name!r} is registered twice")
        SUBCOMMANDS[name] = func
        return func

    return register


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m ml", description="Stroke detection library tools."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in sorted(SUBCOMMANDS):
        SUBCOMMANDS[name](subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the subcommand, return its code.

    A ValueError (bad input data or arguments) prints ``error: ...`` to stderr and
    returns 2, an OSError (unreadable or unwritable path) returns 1.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


# --- synth ------------------------------------------------------------------------


@subcommand("synth")
def _register_synth(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic head-CT phantoms (normal/ischemic/hemorrhagic)",
        description="Write DIR/<label>/<study>/... and DIR/labels.csv.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--studies", required=True, type=_positive_int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=_positive_int, default=256, help="pixels")
    parser.add_argument("--slices", type=_positive_int, default=24)
    parser.add_argument("--format", choices=("dicom", "png", "both"), default="dicom")
    parser.add_argument(
        "--compression",
        choices=("none", "rle", "jpeg-ls", "jpeg2000", "mixed"),
        default="none",
        help="lossless DICOM compression; 'mixed' cycles all four over studies",
    )
    parser.add_argument("--masks", choices=("npy", "png", "none"), default="npy")
    parser.add_argument("--montage", type=Path, help="also save a montage PNG here")
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from ml import synthetic

    start = time.perf_counter()
    records = synthetic.synthesize_dataset(
        args.out,
        studies=args.studies,
        seed=args.seed,
        size=args.size,
        slices=args.slices,
        fmt=args.format,
        compression=args.compression,
        masks=args.masks,
    )
    counts = Counter(r.label for r in records)
    summary = ", ".join(f"{label} {counts[label]}" for label in synthetic.LABELS)
    elapsed = time.perf_counter() - start
    print(f"wrote {len(records)} studies ({summary}) to {args.out} in {elapsed:.1f} s")
    print(f"labels: {args.out / 'labels.csv'}")
    if args.montage:
        _write_montage(args, records)
    return 0


def _write_montage(args: argparse.Namespace, records: Sequence[Any]) -> None:
    import cv2

    from ml import synthetic

    firsts = {r.label: r for r in reversed(records)}  # first study of each label
    chosen = sorted(firsts.values(), key=lambda r: r.scan_number)
    phantoms = [
        synthetic.make_phantom(
            label=r.label, size=args.size, slices=args.slices, seed=r.seed
        )
        for r in chosen
    ]
    montage = synthetic.phantom_montage(phantoms, columns=6)
    args.montage.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.montage), cv2.cvtColor(montage, cv2.COLOR_RGB2BGR))
    print(f"montage: {args.montage}")


# --- index ------------------------------------------------------------------------


@subcommand("index")
def _register_index(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "index",
        help="index a labelled image folder into a manifest CSV (groups, duplicates)",
        description=(
            "Images must sit under class folders (Normal/, Stroke/, hemorrhagic/, "
            "ischemic/, any case). Groups (scans): PatientID/StudyInstanceUID for "
            "DICOM, the file name otherwise (--group-regex). Writes the manifest "
            "CSV given by --out (one row per image: path relative to the data "
            "folder, label, group, split group, sha256, perceptual hash) and prints "
            "the class counts and duplicates; `train` and `evaluate` read it."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("data", type=Path, help="data folder")
    parser.add_argument("--out", required=True, type=Path, help="manifest CSV to write")
    parser.add_argument(
        "--group-regex",
        help="regex on the file stem with a named group 'group' "
        "(default: 'N (k)' is slice k of scan N)",
    )
    parser.add_argument(
        "--near-threshold",
        type=int,
        default=4,
        help="max perceptual-hash Hamming distance (default 4)",
    )
    parser.add_argument(
        "--min-correlation",
        type=float,
        default=0.99,
        help="thumbnail correlation that confirms a near duplicate; 0 = phash only",
    )
    parser.add_argument("--workers", type=_positive_int, default=2)
    parser.set_defaults(handler=_run_index)


def _run_index(args: argparse.Namespace) -> int:
    from ml import datasets

    start = time.perf_counter()
    result = datasets.index_folder(
        args.data,
        group_regex=args.group_regex,
        near_threshold=args.near_threshold,
        min_correlation=args.min_correlation,
        workers=args.workers,
    )
    datasets.write_manifest(result.rows, args.out)
    elapsed = time.perf_counter() - start
    print(f"indexed {len(result.rows)} images in {elapsed:.1f} s -> {args.out}")
    _print_counts(datasets.class_counts(result.rows))
    _print_duplicates(
        result, datasets.cross_group_pairs(result.rows, result.duplicates)
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _print_skipped(result.skipped)
    return 0


def _print_counts(counts: dict[str, tuple[int, int, int]]) -> None:
    print("| class | images | groups | split groups |")
    print("|---|---:|---:|---:|")
    for label, (images, groups, split_groups) in counts.items():
        print(f"| {label} | {images} | {groups} | {split_groups} |")


def _print_duplicates(
    result: Any, cross: Sequence[tuple[str, str, int, float]]
) -> None:
    exact, near = result.duplicates.exact, result.duplicates.near
    files = sum(len(c) for c in exact)
    print(f"exact duplicates: {len(exact)} cluster(s), {files} files")
    for cluster in exact[:20]:
        print("  = " + "  ".join(cluster))
    print(f"near duplicates: {len(near)} pair(s), {len(cross)} across groups")
    for a, b, distance, corr in cross[:20]:
        print(f"  ~ {a}  {b}  (distance {distance}, r={corr})")
    if len(cross) > 20:
        print(f"  ... and {len(cross) - 20} more")


def _print_skipped(skipped: Sequence[tuple[str, str]]) -> None:
    reasons = Counter(reason for _, reason in skipped)
    for reason, count in sorted(reasons.items()):
        example = next(path for path, r in skipped if r == reason)
        print(f"skipped {count} file(s): {reason} (e.g. {example})", file=sys.stderr)


import ml.cli_demo  # noqa: E402, F401  (registers demo-model)
from ml import cli_train  # noqa: E402, F401  (registers train, evaluate, leakage)
from ml.segment import cli as _seg_cli  # noqa: E402, F401  (registers train-seg)
