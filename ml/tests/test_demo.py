"""``python -m ml demo-model``: a demo model the portal can load and run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml import synthetic
from ml.demo import DemoConfig
from ml.io import load_study
from ml.modelfile import model_card_load, model_files_verify

REPO = Path(__file__).resolve().parents[2]


def test_demo_config_refuses_tiny_splits():
    with pytest.raises(ValueError, match="every split"):
        DemoConfig(val_studies=1)


@pytest.mark.slow
def test_demo_model_through_the_cli_is_a_loadable_demo(tmp_path):
    """The quick variant (24 training phantoms, 2 epochs; ~30 s) through
    ``python -m ml``; the full run is timed in docs/BENCHMARKS.md."""
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "ml", "demo-model", "--out", str(out), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "held-out phantoms: study AUC" in done.stdout
    card = model_card_load(out)
    model_files_verify(out, card)
    assert card.demo is True and "DEMO" in card.description
    assert {"study_auc", "slice_auc", "study"} <= set(card.metrics)
    assert card.metrics["test_studies"] == 9
    assert "model.keras" in card.files

    from ml.inference import Predictor

    phantom = synthetic.make_phantom(label="hemorrhagic", size=96, slices=6, seed=9)
    study = load_study(synthetic.write_dicom_series(phantom, tmp_path / "dicom"))
    predictor = Predictor.load(out)
    result = predictor.predict(study)
    assert result.slice_probabilities.shape == (6,)
    assert result.model_name == "demo-phantom-cnn"
    maps = predictor.explain(study, slices=result.top_slices[:2])
    assert all(m.shape == (96, 96) and np.isfinite(m).all() for m in maps.values())


def test_demo_model_refuses_a_folder_in_use(tmp_path):
    from ml.demo import demo_model_train

    (tmp_path / "something").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        demo_model_train(out_dir=tmp_path)
