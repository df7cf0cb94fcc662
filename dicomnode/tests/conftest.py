"""Fixtures for dicomnode tests.

Receiving: a registered scanner of a site, the listener running in a thread on a
free port, dcmtk's storescu/echoscu as the peers, and synthetic series on disk.
Sending back and alerts: reports' studies (the phantom series processed through the
real task with the model stubbed at the ml adapter), shared rather than copied;
real peers (dcmtk's storescp, Orthanc, a local HTTP receiver) on free ports; Celery
run eagerly so a signal's work happens in the test. The model call is stubbed at its
one boundary (diagnosis' ml_adapter.analyse) where a real model is not the point;
validation (ml_adapter.check_upload) is real."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
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
from reports.tests import conftest as report_fixtures
from stroke_portal.celery import app as celery_app
from tests.servers import free_port, wait_for_port

series_dir = report_fixtures.series_dir
phantom = report_fixtures.phantom
analysed_study = report_fixtures.analysed_study
lesion_analysis = report_fixtures.lesion_analysis

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


ORTHANC = Path("/usr/sbin/Orthanc")


@pytest.fixture
def eager_celery():
    """Tasks enqueued on commit run at once, in the test, with their errors."""
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager, conf.task_eager_propagates = True, True
    yield
    conf.task_always_eager, conf.task_eager_propagates = saved


@dataclass
class StoreSCP:
    """A running dcmtk storescp: what it received, read back with pydicom."""

    port: int
    folder: Path
    ae_title: str
    process: subprocess.Popen | None = None

    def received(self) -> list[pydicom.Dataset]:
        return [
            pydicom.dcmread(p) for p in sorted(self.folder.iterdir()) if p.is_file()
        ]

    def by_sop_class(self, sop_class: str) -> list[pydicom.Dataset]:
        return [ds for ds in self.received() if ds.SOPClassUID == sop_class]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def storescp(tmp_path):
    """`start(port=None)` runs storescp (AE "PACS1") on a free port (or `port`)
    writing into a fresh folder; all are stopped after the test."""
    binary = shutil.which("storescp")
    if binary is None:
        pytest.skip("dcmtk's storescp is not installed (apt-get install dcmtk)")
    started: list[StoreSCP] = []

    def start(port: int | None = None) -> StoreSCP:
        port = port or free_port()
        folder = tmp_path / f"storescp-{port}-{len(started)}"
        folder.mkdir()
        peer = StoreSCP(port=port, folder=folder, ae_title="PACS1")
        peer.process = subprocess.Popen(
            [
                binary,
                "-aet",
                peer.ae_title,
                "--output-directory",
                str(folder),
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(peer)
        wait_for_port(port, what="storescp")
        return peer

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture
def destination(db):
    """`make(port, ae_title="PACS1")`: a registered node that receives results."""

    def make(port: int, ae_title: str = "PACS1", name: str = "Hospital PACS"):
        return DicomNode.objects.create(
            name=name,
            ae_title=ae_title,
            host="127.0.0.1",
            port=port,
            sends_studies=False,
            receives_results=True,
        )

    return make


@dataclass
class Orthanc:
    dicom_port: int
    http_port: int
    ae_title: str
    process: subprocess.Popen

    def get(self, path: str):
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: str):
        url = f"http://127.0.0.1:{self.http_port}{path}"
        request = urllib.request.Request(url, data=body.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def orthanc(tmp_path):
    """A real Orthanc with a temp config, storage and index, on free ports."""
    if not ORTHANC.exists():
        pytest.skip(f"Orthanc is not installed ({ORTHANC}; apt-get install orthanc)")
    folder = tmp_path / "orthanc"
    folder.mkdir()
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "stroke-portal-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        "Plugins": [],
    }
    config_path = folder / "orthanc.json"
    config_path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [str(ORTHANC), str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "orthanc.log").open("w"),
    )
    try:
        wait_for_port(http_port, timeout=30, what="Orthanc")
        wait_for_port(dicom_port, timeout=30, what="Orthanc")
        yield Orthanc(dicom_port, http_port, "ORTHANC", process)
    finally:
        process.terminate()
        process.wait(timeout=20)


@dataclass
class WebhookReceiver:
    url: str
    requests: list[dict] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def webhook_receiver():
    """A local HTTP server (free port, own thread) that records every POST:
    {"body": raw bytes, "headers": {...}, "wall": time.time()}."""
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(
                {"body": body, "headers": dict(self.headers), "wall": time.time()}
            )
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/stroke"
    yield receiver
    server.shutdown()
    server.server_close()
