"""Tests for the ``python -m ml`` command line."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from ml import cli
from ml.datasets import read_manifest

REPO = Path(__file__).resolve().parents[2]


def test_python_m_ml_lists_subcommands():
    done = subprocess.run(
        [sys.executable, "-m", "ml", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "synth" in done.stdout and "index" in done.stdout


def test_synth_then_index_through_python_m_ml(tmp_path):
    data, manifest = tmp_path / "data", tmp_path / "manifest.csv"
    options = [
        "--studies",
        "3",
        "--seed",
        "4",
        "--size",
        "64",
        "--slices",
        "4",
        "--format",
        "png",
    ]
    synth = [sys.executable, "-m", "ml", "synth", "--out", str(data), *options]
    done = subprocess.run(
        synth, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 3 studies" in done.stdout
    index = [sys.executable, "-m", "ml", "index", str(data), "--out", str(manifest)]
    done = subprocess.run(
        index, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "| normal | 4 | 1 | 1 |" in done.stdout
    rows = read_manifest(manifest)
    assert len(rows) == 12 and len({r.group for r in rows}) == 3


def test_synth_writes_labels_dicom_and_montage(tmp_path, capsys):
    montage = tmp_path / "img" / "montage.png"
    options = [
        "--studies",
        "3",
        "--size",
        "48",
        "--slices",
        "3",
        "--compression",
        "mixed",
    ]
    code = cli.main(
        ["synth", "--out", str(tmp_path / "d"), *options, "--montage", str(montage)]
    )
    assert code == 0
    with (tmp_path / "d" / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["label"] for r in rows) == ["hemorrhagic", "ischemic", "normal"]
    assert len(list((tmp_path / "d").glob("*/*/IM*.dcm"))) == 9
    assert montage.stat().st_size > 0
    assert "montage" in capsys.readouterr().out


def test_index_reports_duplicates_and_counts(tmp_path, capsys):
    options = ["--studies", "2", "--size", "48", "--slices", "3", "--format", "both"]
    cli.main(["synth", "--out", str(tmp_path / "d"), *options])
    capsys.readouterr()
    code = cli.main(["index", str(tmp_path / "d"), "--out", str(tmp_path / "m.csv")])
    out = capsys.readouterr().out
    assert code == 0
    assert "exact duplicates: 0 cluster(s)" in out
    assert "near duplicates: " in out and "across groups" in out
    assert "| class | images | groups | split groups |" in out
    # The DICOM and PNG copies of one study are one split group.
    rows = read_manifest(tmp_path / "m.csv")
    assert len({r.group for r in rows}) == 4 and len({r.split_group for r in rows}) == 2


def test_bad_input_is_an_error_message_not_a_traceback(tmp_path, capsys):
    code = cli.main(["index", str(tmp_path / "missing"), "--out", "x.csv"])
    assert code == 2
    assert "error: data folder" in capsys.readouterr().err


def test_bad_arguments_exit_with_usage():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synth", "--out", "x", "--studies", "0"])
    assert exit_info.value.code == 2


def test_subcommands_can_be_registered(capsys):
    @cli.subcommand("hello")
    def _register(subparsers):
        parser = subparsers.add_parser("hello")
        parser.set_defaults(handler=lambda args: print("hi") or 0)

    try:
        assert cli.main(["hello"]) == 0
        assert capsys.readouterr().out == "hi\n"
        with pytest.raises(ValueError, match="twice"):
            cli.subcommand("hello")(_register)
    finally:
        cli.SUBCOMMANDS.pop("hello", None)
