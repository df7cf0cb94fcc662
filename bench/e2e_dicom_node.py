"""Issue 16's "done when", end to end, with the processes `make run` starts.

A fresh DATA_DIR (SQLite, the folder broker: what `make run` uses by default), the
shipped model activated, scripts/runportal.py (web, worker, beat, DICOM listener)
with a webhook URL set; a real Orthanc registered as the destination; scanners
registered as nodes. Then:

1. `echoscu` and `storescu -aet SCANNER1` send a synthetic 30-slice 512-px head CT
   with an intraparenchymal bleed;
2. the study becomes ready on the worklist (QIDO sees it), the PDF, key images and
   structured report arrive in Orthanc (its REST API lists them), the signed
   webhook arrives at a local receiver;
3. dicomweb-client, as OHIF would, lists and fetches the study with a token.

It prints the times from the last instance sent to each of these, and then the
same for N scanners sending at once (--scanners, default 5).

    .venv/bin/python bench/e2e_dicom_node.py [--quiet 10] [--scanners 5]
        [--complete-on-release]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import free_port, wait_for_port  # noqa: E402

PY = sys.executable
SECRET = "e2e-webhook-secret"  # noqa: S105


class Hooks:
    """A local webhook receiver: (arrival time, body, signature ok) per POST."""

    def __init__(self):
        self.received: list[tuple[float, dict, bool]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sent = self.headers.get("X-Stroke-Portal-Signature", "")
                mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(sent, f"sha256={mac}")
                hooks.received.append((time.time(), json.loads(body), ok))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def orthanc(folder: Path) -> tuple[subprocess.Popen, int, int]:
    folder.mkdir(parents=True)
    dicom_port, http_port = free_port(), free_port()
    config = folder / "orthanc.json"
    config.write_text(
        json.dumps(
            {
                "Name": "e2e-pacs",
                "StorageDirectory": str(folder / "storage"),
                "IndexDirectory": str(folder / "index"),
                "DicomAet": "ORTHANC",
                "DicomPort": dicom_port,
                "HttpPort": http_port,
                "RemoteAccessAllowed": False,
                "AuthenticationEnabled": False,
                "Plugins": [],
            }
        )
    )
    process = subprocess.Popen(
        ["/usr/sbin/Orthanc", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(http_port, timeout=30, what="Orthanc")
    wait_for_port(dicom_port, timeout=30, what="Orthanc")
    return process, dicom_port, http_port


def get_json(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        body = response.read()
        return json.loads(body) if body else []


def wait(test, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value, time.time()
        time.sleep(step)
    raise TimeoutError(f"not within {timeout:.0f} s")


def series(folder: Path, n: int) -> list[list[Path]]:
    from ml.synthetic import make_phantom, write_dicom_series

    out = []
    for k in range(n):
        phantom = make_phantom(
            label="hemorrhagic", lesion="intraparenchymal", size=512, slices=30, seed=k
        )
        target = folder / f"series-{k}"
        write_dicom_series(
            phantom, target, patient_id=f"E2E-{k}", uid_seed=f"e2e-dicom-{k}"
        )
        out.append(sorted(target.iterdir()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet", type=float, default=10.0)
    parser.add_argument("--scanners", type=int, default=5)
    parser.add_argument(
        "--complete-on-release",
        action="store_true",
        help="register the scanners as sending a study per association",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="e2e-dicom-"))
    hooks = Hooks()
    pacs, pacs_dicom, pacs_http = orthanc(tmp / "orthanc")
    web_port, dicom_port = free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_"))
    }
    env.update(
        DATA_DIR=str(tmp / "var"),
        DJANGO_SECRET_KEY="e2e-" + "k" * 50,
        DATABASE_URL="",
        REDIS_URL="",
        CELERY_BROKER_URL="",
        DICOM_QUIET_SECONDS=str(args.quiet),
        ALERT_WEBHOOK_URL=hooks.url,
        ALERT_WEBHOOK_SECRET=SECRET,
        PORTAL_URL=f"http://127.0.0.1:{web_port}",
        LOG_LEVEL="WARNING",
    )

    def manage(*argv: str) -> str:
        done = subprocess.run(
            [PY, "manage.py", *argv], cwd=REPO, env=env, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        return done.stdout

    manage("migrate", "--noinput")
    manage("static_ensure")
    passwords = dict(re.findall(r"(demo-\w+)\s+(\w{16})", manage("demo_users")))
    manage("model_ensure")
    nodes = "\n".join(
        f"DicomNode.objects.create(name='CT {k}', ae_title='SCANNER{k}', site=site, "
        f"complete_on_release={args.complete_on_release})"
        for k in range(1, args.scanners + 1)
    )
    manage(
        "shell",
        "-c",
        "from accounts.models import Site\nfrom dicomnode.models import DicomNode\n"
        "site = Site.objects.create(name='Emergency')\n"
        f"{nodes}\n"
        "DicomNode.objects.create(name='PACS', ae_title='ORTHANC', host='127.0.0.1', "
        f"port={pacs_dicom}, sends_studies=False, receives_results=True)\n",
    )
    log = open(tmp / "runportal.log", "w")  # noqa: SIM115
    portal = subprocess.Popen(
        [
            PY,
            "scripts/runportal.py",
            "--port",
            str(web_port),
            "--dicom-port",
            str(dicom_port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{web_port}"
    try:
        wait(lambda: _up(base), 120)
        wait_for_port(dicom_port, timeout=60, what="the DICOM listener")
        token = _token(base, "demo-radiologist", passwords["demo-radiologist"])
        studies = series(tmp, args.scanners + 1)
        results = {
            "one scanner": one(
                args, studies[0], dicom_port, base, token, pacs_http, hooks
            )
        }
        results["dicomweb-client"] = ohif(base, token)
        if args.scanners > 1:
            results[f"{args.scanners} scanners at once"] = many(
                args, studies[1:], dicom_port, base, token, hooks
            )
        print(json.dumps(results, indent=2))
    finally:
        os.killpg(portal.pid, 15)
        portal.wait(timeout=60)
        pacs.terminate()
        pacs.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _up(base: str) -> bool:
    try:
        return get_json(f"{base}/healthz") is not None
    except OSError:
        return False


def _token(base: str, username: str, password: str) -> str:
    data = f"username={username}&password={password}".encode()
    request = urllib.request.Request(f"{base}/api/v1/auth/token/", data=data)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())["token"]


def storescu(port: int, aet: str, files: list[Path]) -> float:
    subprocess.run(
        [
            "storescu",
            "-aet",
            aet,
            "-aec",
            "STROKEPORTAL",
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        check=True,
        capture_output=True,
    )
    return time.time()


def one(args, files, dicom_port, base, token, pacs_http, hooks) -> dict:
    echo = subprocess.run(
        [
            "echoscu",
            "-aet",
            "SCANNER1",
            "-aec",
            "STROKEPORTAL",
            "127.0.0.1",
            str(dicom_port),
        ],
        capture_output=True,
    )
    sent = storescu(dicom_port, "SCANNER1", files)
    auth = {"Authorization": f"Bearer {token}"}
    qido = f"{base}/dicomweb/studies?PatientID=E2E-0"
    found, seen_at = wait(lambda: get_json(qido, auth), 180)
    study = found[0]["0020000D"]["Value"][0]
    instances, pacs_at = wait(
        lambda: _pacs_has_results(pacs_http, study), 240, step=0.3
    )
    hook, hook_at = wait(lambda: _hook_for(hooks, "E2E-0"), 240)
    return {
        "echoscu_ok": echo.returncode == 0,
        "slices_sent": len(files),
        "quiet_seconds": args.quiet,
        "complete_on_release": args.complete_on_release,
        "to_listed_by_qido_s": round(seen_at - sent, 1),
        "to_results_in_orthanc_s": round(pacs_at - sent, 1),
        "to_webhook_s": round(hook_at - sent, 1),
        "webhook_signature_ok": hook[2],
        "webhook_finding": hook[1].get("finding"),
        "webhook_has_patient_name": "patient_name" in hook[1],
        "orthanc_series_descriptions": instances,
    }


def _pacs_has_results(http_port: int, study_uid: str):
    base = f"http://127.0.0.1:{http_port}"
    request = urllib.request.Request(  # noqa: S310
        f"{base}/tools/find",
        data=json.dumps(
            {
                "Level": "Series",
                "Query": {"StudyInstanceUID": study_uid},
                "Expand": True,
            }
        ).encode(),
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        series = json.loads(response.read())
    modalities = sorted(s["MainDicomTags"].get("Modality", "") for s in series)
    # The key images (OT or SC), the PDF (DOC) and the structured report (SR).
    return modalities if {"DOC", "SR"} <= set(modalities) and len(series) >= 3 else None


def _hook_for(hooks: Hooks, patient: str):
    return next((h for h in hooks.received if h[1].get("patient_id") == patient), None)


def ohif(base: str, token: str) -> dict:
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(
        url=f"{base}/dicomweb", headers={"Authorization": f"Bearer {token}"}
    )
    started = time.perf_counter()
    studies = client.search_for_studies(search_filters={"PatientID": "E2E-0"})
    uid = studies[0]["0020000D"]["Value"][0]
    series = client.search_for_series(uid)
    metadata = client.retrieve_study_metadata(uid)
    first = metadata[0]
    instance = client.retrieve_instance(
        uid, first["0020000E"]["Value"][0], first["00080018"]["Value"][0]
    )
    return {
        "studies": len(studies),
        "series": len(series),
        "instances_in_metadata": len(metadata),
        "retrieved_instance_rows": int(instance.Rows),
        "seconds": round(time.perf_counter() - started, 2),
    }


def many(args, studies, dicom_port, base, token, hooks) -> dict:
    sent: dict[str, float] = {}

    def send(k: int, files: list[Path]):
        sent[f"E2E-{k + 1}"] = storescu(dicom_port, f"SCANNER{k + 1}", files)

    threads = [
        threading.Thread(target=send, args=(k, f)) for k, f in enumerate(studies)
    ]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sending = time.time() - started
    times = {}
    for patient, at in sent.items():
        _, hook_at = wait(lambda p=patient: _hook_for(hooks, p), 600)
        times[patient] = round(hook_at - at, 1)
    return {
        "sending_all_s": round(sending, 1),
        "last_instance_to_webhook_s": dict(sorted(times.items())),
    }


if __name__ == "__main__":
    sys.exit(main())
