"""From `study_ready` to the results in the PACS and the alert at the webhook.

    .venv/bin/pytest -q -s -p no:cacheprovider bench/bench_send_back.py

A 30-slice 512x512 synthetic head CT is uploaded and processed through the real
task with the model stubbed at the ml adapter (as the portal's tests do), so the
clock starts when the study is ready — the figure after the listener's quiet time
and the analysis. What `study_ready` enqueues then runs in this process, one task
after another as one worker of the default queue would take them: the alert
(e-mail and signed webhook, to a local HTTP receiver), the report's rendering, and
the PDF, key images and SR, sent by C-STORE to a real dcmtk storescp or a real
Orthanc on free ports. Each destination is measured `REPEAT` times, each on a
fresh database. Results: a table on stdout and bench/results/send_back.json.
"""

from __future__ import annotations

import json
import os
import statistics
from datetime import datetime
from pathlib import Path

import pytest
from django.utils import timezone

from diagnosis.signals import study_ready
from dicomnode.models import Alert, Delivery, DeliveryState
from dicomnode.tests import conftest as node_fixtures
from ml.synthetic import make_phantom, write_dicom_series

# The dicomnode tests' fixtures: real peers on free ports, eager Celery, the study.
active_model = node_fixtures.active_model
analysed_study = node_fixtures.analysed_study
destination = node_fixtures.destination
eager_celery = node_fixtures.eager_celery
files_root = node_fixtures.files_root
lesion_analysis = node_fixtures.lesion_analysis
orthanc = node_fixtures.orthanc
storescp = node_fixtures.storescp
stub_analysis = node_fixtures.stub_analysis
webhook_receiver = node_fixtures.webhook_receiver
REPEAT = 3
SLICES, SIZE = 30, 512
RESULTS = Path(__file__).resolve().parent / "results" / "send_back.json"
_rows: list[dict] = []


@pytest.fixture(scope="session")
def phantom():
    return make_phantom(label="hemorrhagic", size=SIZE, slices=SLICES, seed=3)


@pytest.fixture(scope="session")
def series_dir(tmp_path_factory, phantom):
    folder = tmp_path_factory.mktemp("bench-series")
    write_dicom_series(phantom, folder, patient_id="BENCH-0001")
    return folder


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if not _rows:
        return
    summary = {}
    for peer in sorted({r["peer"] for r in _rows}):
        rows = [r for r in _rows if r["peer"] == peer]
        summary[peer] = {
            key: {
                "median": round(statistics.median(r[key] for r in rows), 2),
                "max": round(max(r[key] for r in rows), 2),
            }
            for key in ("webhook_s", "email_s", "pdf_s", "sc_s", "sr_s", "all_s")
        }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"slices": SLICES, "size": SIZE, "runs": _rows, "summary": summary},
            indent=2,
        )
    )
    print(
        "\n| destination | webhook received | e-mail sent | PDF | key images | SR "
        "| all in PACS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for peer, s in summary.items():
        cells = " | ".join(
            f"{s[k]['median']:.2f} s (max {s[k]['max']:.2f})"
            for k in ("webhook_s", "email_s", "pdf_s", "sc_s", "sr_s", "all_s")
        )
        print(f"| {peer} | {cells} |")


@pytest.mark.parametrize("run", range(REPEAT))
@pytest.mark.parametrize("peer", ["storescp", "orthanc"])
def test_send_back(
    peer,
    run,
    request,
    analysed_study,
    phantom,
    destination,
    webhook_receiver,
    settings,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    if peer == "storescp":
        pacs = request.getfixturevalue("storescp")()
        destination(pacs.port)
    else:
        pacs = request.getfixturevalue("orthanc")
        destination(pacs.dicom_port, ae_title=pacs.ae_title, name="Orthanc")
    settings.ALERT_EMAILS = ["stroke-team@hospital.test"]
    settings.ALERT_WEBHOOK_URL = webhook_receiver.url
    settings.ALERT_WEBHOOK_SECRET = os.urandom(16).hex()
    ready_at: list[datetime] = []

    def clock(sender, **kwargs):
        ready_at.append(timezone.now())

    study_ready.connect(clock, dispatch_uid="bench-clock")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            study = analysed_study(lesion_analysis(phantom, volume_ml=12.5))
    finally:
        study_ready.disconnect(dispatch_uid="bench-clock")

    t0 = ready_at[0]
    sent = {d.kind: d for d in Delivery.objects.filter(study=study)}
    assert {d.state for d in sent.values()} == {DeliveryState.SENT}
    (hook,) = webhook_receiver.requests
    email = Alert.objects.get(study=study, channel="email")
    row = {
        "peer": peer,
        "run": run,
        "webhook_s": hook["wall"] - t0.timestamp(),
        "email_s": (email.sent_at - t0).total_seconds(),
        **{f"{k}_s": (d.sent_at - t0).total_seconds() for k, d in sent.items()},
    }
    row["all_s"] = max(row["pdf_s"], row["sc_s"], row["sr_s"])
    _rows.append(row)
