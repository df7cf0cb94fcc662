"""Tests for the ``python -m ml`` command line."""

import contextlib
import csv
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml import cli
from ml.datasets import read_manifest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--size", "16", "--epochs", "1", "--batch-size", "8", "--no-augment",
        "--option", "filters=[8, 8, 8, 8, 8, 8]", "--option", "dense=8"]  # fmt: skip


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


# --- train, evaluate and their help ---------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """12 synthetic PNG studies in class folders, indexed, and a tiny custom_cnn
    trained on them with ``train --final-only``: (data, manifest, run, stdout)."""
    pytest.importorskip("keras")
    from ml.synthetic import synthesize_dataset

    root = tmp_path_factory.mktemp("cli-train")
    data, manifest, run = root / "data", root / "manifest.csv", root / "run"
    synthesize_dataset(
        data, studies=12, seed=3, size=64, slices=4, fmt="png", masks="none"
    )
    assert cli.main(["index", str(data), "--out", str(manifest), "--workers", "1"]) == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(
            ["train", "--manifest", str(manifest), "--data-root", str(data),
             "--out", str(run), "--final-only", "--cache-dir", str(root / "cache"),
             *TINY]
        )  # fmt: skip
    assert code == 0, printed.getvalue()
    return data, manifest, run, printed.getvalue()


@pytest.mark.slow
def test_train_final_only_uses_every_scan_and_serves_through_onnx(trained):
    from ml.inference import Predictor
    from ml.modelfile import model_card_load

    _, _, run, printed = trained
    card = model_card_load(run / "model")
    assert "no test split" in printed and "held out" not in printed
    assert "study threshold" in printed and "no held-out test" in printed
    assert card.training_data["groups"] == 12
    assert card.metrics["evaluation"].startswith("none")
    assert json.loads((run / "report.json").read_text())["report"] == {}
    assert "model.onnx" in card.files and "model.onnx kept" in printed
    assert Predictor.load(run / "model").backend == "onnxruntime"


@pytest.mark.slow
def test_evaluate_and_serving_give_the_same_study_probability(trained):
    """Evaluation scores a study exactly as the portal serves an upload of it."""
    from ml.inference import Predictor
    from ml.io import load_study
    from ml.training.predict import predict_manifest

    data, manifest, run, _ = trained
    evaluated = predict_manifest(
        model_dir=run / "model", manifest=manifest, data_root=data
    )
    predictor = Predictor.load(run / "model")
    rows = read_manifest(manifest)
    assert sorted(evaluated["study_prob"]) == sorted({r.group for r in rows})
    for group, probability in evaluated["study_prob"].items():
        files = [data / r.path for r in rows if r.group == group]
        random.Random(0).shuffle(files)  # an upload comes in any order
        served = predictor.predict(load_study(files))
        assert probability == pytest.approx(served.study_probability, abs=1e-6)
        mine = np.asarray(evaluated["groups"]) == group
        np.testing.assert_allclose(
            evaluated["prob"][mine], served.slice_probabilities, atol=1e-6
        )
    assert evaluated["threshold"] == predictor.card.threshold


@pytest.mark.slow
def test_evaluate_data_indexes_a_folder_of_class_folders(trained, tmp_path, capsys):
    data, _, run, _ = trained
    out = tmp_path / "ev"
    code = cli.main(
        ["evaluate", "--model", str(run / "model"), "--data", str(data),
         "--out", str(out), "--bootstrap", "20"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "scored 12 studies (48 slices) on onnxruntime" in printed
    assert "on the study probability (from the model file)" in printed
    assert "study: auc" in printed and (out / "report.html").is_file()
    assert len(read_manifest(out / "manifest.csv")) == 48
    assert json.loads((out / "metrics.json").read_text())["study"]["n"] == 12


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--data", "d", "--manifest", "m.csv", "--data-root", "d"],
        ["--manifest", "m.csv"],
    ],
)
def test_evaluate_model_needs_exactly_one_data_source(extra, tmp_path, capsys):
    code = cli.main(["evaluate", "--model", "m", "--out", str(tmp_path), *extra])
    assert code == 2
    assert "error: " in capsys.readouterr().err


def test_options_are_never_abbreviated(tmp_path):
    # "--data-r" once meant --data-root; now only whole option names are read.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--model", "m", "--data-r", "d", "--out", str(tmp_path)])
    assert exit_info.value.code == 2


def test_a_scan_whose_images_differ_in_size_is_named(tmp_path):
    from PIL import Image

    from ml.datasets import ManifestRow
    from ml.training.predict import load_group

    for k, side in ((1, 64), (2, 64), (3, 48)):
        Image.new("L", (side, side), 40).save(tmp_path / f"7 ({k}).png")
    rows = [ManifestRow(f"7 ({k}).png", "normal", "scan 7", "", "") for k in (1, 2, 3)]
    with pytest.raises(ValueError, match=r"group 'scan 7'.*7 \(3\)\.png.*48x48"):
        load_group(name="scan 7", rows=rows, data_root=tmp_path)


@pytest.mark.parametrize(
    ("command", "writes"),
    [
        ("train", ["OUT/report.json", "OUT/model/", "model.onnx", "--final-only"]),
        ("evaluate", ["OUT/metrics.json", "OUT/report.html", "OUT/manifest.csv"]),
        ("index", ["Writes the manifest CSV"]),
    ],
)
def test_every_help_says_what_the_command_writes(command, writes, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in writes:
        assert phrase in text
