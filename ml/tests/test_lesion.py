"""The lesion-feature model through its real entry points: trained by
``lesion_train`` on a folder of PNG slices in class folders, served by
``Predictor.load``, judged on held-out synthetic heads it never saw."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml import synthetic
from ml.inference import ModelFileError, Predictor
from ml.io import LoadResult, SliceInfo, StudyMetadata, load_study
from ml.modelfile import model_card_load, model_card_save
from ml.tests import lesion_factories as factories

REPO = Path(__file__).resolve().parents[2]
NOT_A_HEAD_CT = "does not look like an? (axial )?head CT"
HELD_OUT = 3  # studies per class


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return factories.train_lesion_model(tmp_path_factory.mktemp("lesion"))


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.load(model_dir)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> list[tuple[bool, factories.PngStudy, LoadResult]]:
    """Normal and bleed studies from seeds the training set did not use."""
    root = tmp_path_factory.mktemp("held-out")
    studies = []
    for k in range(2 * HELD_OUT):
        bleed = k % 2 == 1
        seed = factories.HELD_OUT_SEED + k
        study = factories.write_study(root / f"s{k}", bleed=bleed, seed=seed)
        studies.append((bleed, study, load_study([str(p) for p in study.paths])))
    return studies


def copy_model(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "model"))


def test_lesion_train_writes_a_folder_the_predictor_serves(model_dir, predictor):
    card = predictor.card
    assert type(predictor).__name__ == "LesionPredictor"
    assert predictor.backend == "numpy"
    assert card.architecture == "lesion_features" and card.modality == "CT"
    assert set(card.files) == {"lesion_model.json"}
    assert 0.0 < card.threshold < 1.0 and card.temperature > 0
    assert card.extra["explanation"] == "lesion_map"
    assert card.extra["looks_for"] and card.extra["cannot_exclude"]
    assert (model_dir.parent / "report.json").is_file()


def test_lesion_model_scores_held_out_bleeds_above_normal_heads(predictor, held_out):
    scores = {True: [], False: []}
    for bleed, _study, loaded in held_out:
        prediction = predictor.predict(loaded)
        assert len(prediction.slice_probabilities) == factories.SLICES
        assert "brain slices" in prediction.aggregation
        scores[bleed].append(prediction.study_probability)
    # AUC 1.0: every held-out bleed above every normal head.
    assert min(scores[True]) > max(scores[False]), scores
    assert max(scores[True]) >= predictor.card.threshold  # at least one is flagged


def test_lesion_map_peaks_inside_the_bleed_on_the_slice(predictor, held_out):
    for bleed, study, loaded in held_out:
        if not bleed:
            continue
        top = predictor.predict(loaded).top_slices[0]
        lesion_map = predictor.explain(loaded, slices=[top])[top]
        assert lesion_map.shape == (factories.SIZE, factories.SIZE)
        assert lesion_map.min() >= 0.0 and lesion_map.max() <= 1.0
        peak = np.unravel_index(int(np.argmax(lesion_map)), lesion_map.shape)
        assert top in study.bleed_slices
        assert study.mask[top][peak], f"peak {peak} on slice {top} misses the bleed"


@pytest.mark.parametrize(
    "volume",
    [
        pytest.param(np.zeros((4, 128, 128), np.uint8), id="all-black"),
        pytest.param(factories.empty_ring_slices(), id="empty-shell"),
    ],
)
def test_study_without_brain_is_refused(predictor, volume, tmp_path):
    paths = factories.write_slices(volume, tmp_path)
    with pytest.raises(ValueError, match=NOT_A_HEAD_CT):
        predictor.predict(load_study([str(p) for p in paths]))


def _water_shell_study(inside_hu: float) -> LoadResult:
    """A CT of a test object: a bone-dense shell around a uniform fill."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    r = np.hypot((xx - 64) / 46.0, (yy - 64) / 54.0)
    volume = np.where(r < 1.0, 1200.0, -1000.0)
    volume = np.where(r < 0.92, inside_hu, volume) + rng.normal(0, 4, (6, 128, 128))
    meta = StudyMetadata(source_kind="test", units="HU", modality="CT")
    infos = [SliceInfo(source=f"slice{k}") for k in range(6)]
    return LoadResult(volume=volume.astype(np.float32), slices=infos, metadata=meta)


@pytest.mark.parametrize("inside_hu", [0.0, 85.0], ids=["water", "acrylic"])
def test_filled_test_object_is_refused(predictor, inside_hu):
    with pytest.raises(ValueError, match=NOT_A_HEAD_CT):
        predictor.predict(_water_shell_study(inside_hu))


def test_tampered_lesion_model_is_refused_at_load(model_dir, tmp_path):
    folder = copy_model(model_dir, tmp_path)
    path = folder / "lesion_model.json"
    data = json.loads(path.read_text())
    data["coef"][0] += 0.5
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="sha256"):
        Predictor.load(folder)


def test_lesion_model_of_other_features_is_refused_with_retrain(model_dir, tmp_path):
    folder = copy_model(model_dir, tmp_path)
    path = folder / "lesion_model.json"
    data = json.loads(path.read_text())
    data["feature_names"][0] = "hyper_old_definition"
    path.write_text(json.dumps(data))
    model_card_save(model_card_load(folder), folder)  # hashes agree: only the code
    with pytest.raises(ModelFileError, match="retrain"):
        Predictor.load(folder)


def test_mr_study_is_refused(predictor, tmp_path):
    import pydicom

    phantom = factories.head_phantom(bleed=True, seed=factories.HELD_OUT_SEED)
    for path in synthetic.write_dicom_series(phantom, tmp_path):
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.save_as(path)
    loaded = load_study(sorted(str(p) for p in tmp_path.iterdir()))
    assert loaded.metadata.modality == "MR"
    with pytest.raises(ValueError, match=r"study is MR but model .* reads head CT"):
        predictor.predict(loaded)
    with pytest.raises(ValueError, match="study is MR"):
        predictor.explain(loaded, slices=[0])


def test_saving_a_lesion_model_does_not_need_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "sys.modules.update(tensorflow=None, keras=None)\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from ml.brain import BrainConfig\n"
        "from ml.datasets import ManifestRow\n"
        "from ml.lesion.features import FEATURE_NAMES\n"
        "from ml.lesion.model import LesionModel\n"
        "from ml.lesion.train import FittedLesionModel, save_model_folder\n"
        "from ml.training.config import TrainConfig\n"
        "n = len(FEATURE_NAMES)\n"
        "model = LesionModel(list(FEATURE_NAMES), np.zeros(n), np.ones(n),\n"
        "                    np.zeros(n), 0.0, BrainConfig(size=64))\n"
        "rows = [ManifestRow('a.png', 'normal', 'scan 1', '0' * 64, '0' * 16),\n"
        "        ManifestRow('b.png', 'stroke', 'scan 2', '1' * 64, '0' * 16)]\n"
        "save_model_folder(FittedLesionModel(model, 1.0, 0.5, 'topk', 3), rows=rows,\n"
        "    config=TrainConfig(architecture='lesion_features'), report={},\n"
        f"    folder=Path({str(tmp_path / 'model')!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-600:]


def test_evaluation_training_and_serving_give_one_study_probability(
    model_dir, predictor, held_out, tmp_path
):
    """The study probability a lesion model's threshold was chosen with (training's
    scoring), the one `python -m ml evaluate` reports and the one the portal serves
    are the same number for the same study."""
    from ml.datasets import index_folder
    from ml.lesion.model import LesionModel
    from ml.lesion.train import FittedLesionModel, load_studies
    from ml.training.predict import predict_manifest

    data = tmp_path / "data"
    for k, (bleed, study, _) in enumerate(held_out):
        folder = data / ("Stroke" if bleed else "Normal")
        folder.mkdir(parents=True, exist_ok=True)
        for path in study.paths:
            shutil.copy(path, folder / path.name.replace("1 (", f"{k + 1} ("))
    rows = index_folder(data).rows
    evaluated = predict_manifest(model_dir=model_dir, manifest=rows, data_root=data)
    card = predictor.card
    fitted = FittedLesionModel(
        LesionModel.load(model_dir),
        card.temperature,
        card.threshold,
        card.extra["aggregation"],
        card.extra["top_k"],
    )
    trained = {
        s.name: fitted.score(s)[1]
        for s in load_studies(rows, data_root=data, brain=fitted.model.brain)
    }
    assert len(evaluated["study_prob"]) == len(held_out) == len(trained)
    for name, probability in evaluated["study_prob"].items():
        paths = [str(data / r.path) for r in rows if r.group == name]
        served = predictor.predict(load_study(paths))
        assert served.study_probability == pytest.approx(probability, abs=1e-6)
        assert trained[name] == pytest.approx(probability, abs=1e-6)
