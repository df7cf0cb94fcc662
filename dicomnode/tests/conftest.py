"""Fixtures for dicomnode tests: a registered scanner of a site, the listener
running in a thread on a free port, dcmtk's storescu/echoscu as the peers, and
synthetic series on disk. The model call is stubbed at its one boundary
(diagnosis' ml_adapter.analyse, as in diagnosis' tests) where a real model is not
the point; validation (ml_adapter.check_upload) is real."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from accounts.models import Site
from diagnosis.tests.conftest import (  # noqa: F401  (fixtures)
    active_model,
    fake_analysis,
    stub_analysis,
)
from dicomnode.listener import Listener
from dicomnode.models import DicomNode
from ml.synthetic import make_phantom, write_dicom_series

PORTAL_AE = "STROKEPORTAL"
DCMTK = pytest.mark.skipif(
    not (shutil.which("storescu") and shutil.which("echoscu")),
    reason="dcmtk's storescu/echoscu are not installed (apt install dcmtk)",
)


@pytest.fixture(autouse=True)
def files_root(settings, tmp_path):
    settings.FILES_ROOT = tmp_path / "files"
    settings.DICOM_INCOMING_DIR = tmp_path / "incoming"
    settings.DICOM_AE_TITLE = PORTAL_AE
    settings.DICOM_QUIET_SECONDS = 1.0
    return settings.FILES_ROOT


@pytest.fixture
def site(db):
    return Site.objects.create(name="Northside ED")


@pytest.fixture
def scanner(site):
    return DicomNode.objects.create(name="ED CT", ae_title="SCANNER1", site=site)


@pytest.fixture
def listener(transactional_db, scanner):
    """The listener on a free port of 127.0.0.1, completing quiet collections
    itself as `manage.py dicom_listen` does."""
    running = Listener(host="127.0.0.1", port=0).start()
    yield running
    running.stop()


def storescu(port: int, files, *, aet: str = "SCANNER1", extra=()):
    argv = ["storescu", "-aet", aet, "-aec", PORTAL_AE, *extra, "127.0.0.1"]
    return subprocess.run(
        [*argv, str(port), *[str(f) for f in files]],
        capture_output=True,
        text=True,
        timeout=300,
    )


def echoscu(port: int, *, aet: str = "SCANNER1"):
    return subprocess.run(
        ["echoscu", "-aet", aet, "-aec", PORTAL_AE, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_for(predicate, timeout: float = 30.0, step: float = 0.1):
    """The predicate's first truthy value within `timeout` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def queued(timeout: float = 30.0):
    """The study the listener made (a network study), once it is queued."""
    from diagnosis.models import Arrival, Study

    return wait_for(
        lambda: Study.objects.filter(arrival=Arrival.DICOM).first(), timeout=timeout
    )


def series(folder: Path, *, slices=8, patient_id="MRN-0042", seed=3, uid_seed=None):
    return write_dicom_series(
        make_phantom(label="hemorrhagic", size=64, slices=slices, seed=seed),
        folder,
        patient_id=patient_id,
        uid_seed=uid_seed,
    )


@pytest.fixture
def synthetic_series(tmp_path) -> list[Path]:
    """An 8-slice 64-px synthetic head CT as a DICOM series."""
    return series(tmp_path / "series", uid_seed="dicomnode-tests")
