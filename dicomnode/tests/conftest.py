"""Fixtures for dicomnode tests: reports' studies (the phantom series processed
through the real task with the model stubbed at the ml adapter), shared rather
than copied; real peers (dcmtk's storescp, Orthanc, a local HTTP receiver) on free
ports; Celery run eagerly so a signal's work happens in the test."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest

from dicomnode.models import DicomNode
from reports.tests import conftest as report_fixtures
from stroke_portal.celery import app as celery_app

files_root = report_fixtures.files_root
series_dir = report_fixtures.series_dir
active_model = report_fixtures.active_model
stub_analysis = report_fixtures.stub_analysis
phantom = report_fixtures.phantom
analysed_study = report_fixtures.analysed_study
lesion_analysis = report_fixtures.lesion_analysis

ORTHANC = Path("/usr/sbin/Orthanc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, *, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {seconds} s")


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
        wait_for_port(port)
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
        wait_for_port(http_port, seconds=30)
        wait_for_port(dicom_port, seconds=30)
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
