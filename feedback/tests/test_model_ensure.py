"""`manage.py model_ensure`, which `make run` calls on every start: a fresh install
gets the model shipped with the project, a second start changes nothing, an active
model stays active, and a missing or damaged shipped model says what to do.

The shipped model here is a lesion-feature model built in a temporary folder (a
JSON file of coefficients: it loads in milliseconds), put where SHIPPED_MODEL_DIR
points."""

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEntry
from feedback import ml_adapter, selectors
from feedback.models import ModelStatus, ModelVersion
from ml.modelfile import file_sha256, model_card_load, model_card_save

pytestmark = pytest.mark.django_db


def lesion_model_folder(folder: Path, *, name: str, demo: bool = False) -> Path:
    """A loadable lesion-feature model whose weights are all zero."""
    from ml.brain import BrainConfig
    from ml.datasets import ManifestRow
    from ml.lesion.features import FEATURE_NAMES
    from ml.lesion.model import LesionModel
    from ml.lesion.train import FittedLesionModel, save_model_folder
    from ml.training.config import TrainConfig

    n = len(FEATURE_NAMES)
    model = LesionModel(
        list(FEATURE_NAMES), np.zeros(n), np.ones(n), np.zeros(n), 0.0, BrainConfig()
    )
    rows = [
        ManifestRow("a.png", "normal", "scan 1", "0" * 64, "0" * 16),
        ManifestRow("b.png", "stroke", "scan 2", "1" * 64, "0" * 16),
    ]
    save_model_folder(
        FittedLesionModel(model, 1.0, 0.5, "topk", 3),
        rows=rows,
        config=TrainConfig(architecture="lesion_features", name=name),
        report={},
        folder=folder,
    )
    if demo:
        card = model_card_load(folder)
        card.demo = True
        model_card_save(card, folder)
    return folder


@pytest.fixture
def shipped(settings, tmp_path):
    folder = lesion_model_folder(tmp_path / "ich-seg-ctich", name="ich-seg-ctich")
    settings.SHIPPED_MODEL_DIR = folder
    return folder


def model_ensure(*args) -> str:
    out = io.StringIO()
    call_command("model_ensure", *args, stdout=out)
    return out.getvalue()


def test_a_fresh_start_activates_the_shipped_model(shipped, settings):
    output = model_ensure()

    active = selectors.model_version_for_study(modality="CT")
    assert active is not None
    assert (active.name, active.is_demo) == ("ich-seg-ctich", False)
    assert active.sha256 == file_sha256(shipped / "model.json")
    assert f"Active CT model: {active}" in output
    # Served from a copy under MODELS_DIR, which loads as the inference workers load.
    copy = Path(active.path)
    assert copy.parent == Path(settings.MODELS_DIR) / "shipped"
    ml_adapter.model_load_check(copy)


def test_a_second_start_changes_nothing(shipped):
    model_ensure()
    first = ModelVersion.objects.get()
    audit = AuditEntry.objects.count()
    copy_mtime = Path(first.path).stat().st_mtime_ns

    output = model_ensure()

    again = ModelVersion.objects.get()
    assert (again.pk, again.status) == (first.pk, ModelStatus.ACTIVE)
    assert (again.activated_at, again.updated_at) == (
        first.activated_at,
        first.updated_at,
    )
    assert AuditEntry.objects.count() == audit
    assert Path(again.path).stat().st_mtime_ns == copy_mtime
    assert output.strip() == f"Active CT model: {first}."


def test_an_active_model_is_kept_unless_replace_is_asked(shipped, active_model):
    assert "unit-test model" in model_ensure()
    assert list(ModelVersion.objects.all()) == [active_model]

    model_ensure("--replace")

    active_model.refresh_from_db()
    assert active_model.status == ModelStatus.RETIRED
    active = selectors.model_version_for_study(modality="CT")
    assert active.name == "ich-seg-ctich"
    assert active.previous_active == active_model


def test_demo_model_target_replaces_the_shipped_model_and_start_keeps_it(
    shipped, settings
):
    # `make demo-model` runs `model_ensure --demo --replace`; a demo model already
    # trained under MODELS_DIR/demo is registered without training it again.
    model_ensure()
    lesion_model_folder(Path(settings.MODELS_DIR) / "demo", name="demo", demo=True)

    model_ensure("--demo", "--replace")
    output = model_ensure()

    active = selectors.model_version_for_study(modality="CT")
    assert (active.name, active.is_demo) == ("demo", True)
    assert "model_ensure --replace` activates the shipped model" in output


def test_a_missing_shipped_model_says_what_to_do(settings, tmp_path):
    settings.SHIPPED_MODEL_DIR = tmp_path / "models" / "ich-seg-ctich"

    with pytest.raises(CommandError) as error:
        model_ensure()

    message = str(error.value)
    assert str(settings.SHIPPED_MODEL_DIR) in message
    assert "make demo-model" in message and "--path" in message
    assert not ModelVersion.objects.exists()


def test_a_damaged_shipped_model_is_refused_and_not_copied(shipped, settings):
    (shipped / "lesion_model.json").write_text('{"format": 1}\n')

    with pytest.raises(CommandError, match="does not match its sha256"):
        model_ensure()

    assert not ModelVersion.objects.exists()
    assert not (Path(settings.MODELS_DIR) / "shipped").exists()
