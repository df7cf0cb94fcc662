"""DICOMweb read side: QIDO-RS over a worklist of studies, WADO-RS of one study.

    .venv/bin/python bench/bench_dicomweb.py [--studies 500] [--slices 30]
        [--size 512] [--repeat 5]

In one process: a fresh test database (PostgreSQL when it answers, as the tests
use; dropped at the end), `--studies` DICOM studies of `--slices` 64-px slices
stored as uploads are (content-addressed files and StudyFile rows), one
`--slices`-slice study of `--size`² slices, Django's threaded live server on a free
loopback port and a radiologist's Bearer token. Prints, as Markdown:

- GET /dicomweb/studies (all studies; OHIF's first page, limit=101 with its
  includefield): cold (every file's header read), in a new process (the index
  from the shared cache), warm (this process's copy), and in process without HTTP;
- GET a study (multipart/related, application/dicom) through requests and through
  dicomweb-client, MB/s; every frame of it one request each, as a viewer does.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JSON = "application/dicom+json"
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stroke_portal.settings_test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--slices", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run(args)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _store(ds) -> tuple[str, str, int]:
    """Write `ds` into content-addressed storage; (storage name, sha256, size)."""
    import io

    from diagnosis import storage

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    path = storage.upload_path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path.relative_to(storage.uploads_root())), sha, len(data)


def seed_study(uploader, template: list, n: int):
    """Study `n`: the template's slices under new UIDs and patient ID, stored."""
    from pydicom.uid import generate_uid

    from diagnosis.models import Study, StudyFile, StudyStatus

    study_uid, series_uid = generate_uid(), generate_uid()
    files = []
    for ds in template:
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID = f"MRN{n:05d}"
        files.append((ds.InstanceNumber, *_store(ds)))
    study = Study.objects.create(
        uploaded_by=uploader,
        status=StudyStatus.READY,
        content_hash=hashlib.sha256(study_uid.encode()).hexdigest(),
        source_kind="dicom",
        units="HU",
        modality="CT",
        slice_count=len(files),
        patient_id=f"MRN{n:05d}",
        study_instance_uid=study_uid,
    )
    StudyFile.objects.bulk_create(
        StudyFile(
            study=study,
            original_name=f"IM{number:04d}.dcm",
            sha256=sha,
            size=size,
            storage_name=name,
        )
        for number, name, sha, size in files
    )
    return study


def phantom_slices(size: int, slices: int, folder: Path) -> list:
    import pydicom

    from ml.synthetic import make_phantom, write_dicom_series

    paths = write_dicom_series(
        make_phantom(label="hemorrhagic", size=size, slices=slices, seed=1), folder
    )
    return [pydicom.dcmread(p) for p in paths]


def forget_indexes(dicomweb_index) -> None:
    """Empty this process's index and the shared cache's entries for the studies
    (only those: the cache is shared with whatever else uses it)."""
    from diagnosis.models import Study

    files = dicomweb_index.study_files(Study.objects.values_list("pk", flat=True))
    from django.core.cache import cache

    cache.delete_many([dicomweb_index._key(f) for f in files.values() if f])
    dicomweb_index.clear_cache()


def timed(call, repeat: int) -> tuple[float, float]:
    """(first call's seconds, median of the next `repeat`)."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times = [first]
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times[1:] or times)


def run(args) -> None:
    import tempfile

    import requests
    from django.conf import settings
    from django.test.testcases import LiveServerThread, _StaticFilesHandler
    from rest_framework.authtoken.models import Token

    from accounts.tests.factories import UserFactory
    from dicomnode import dicomweb_index

    tmp = Path(tempfile.mkdtemp(prefix="bench-dicomweb-"))
    settings.FILES_ROOT = tmp / "files"
    uploader = UserFactory(username="bench-clinician", role="clinician")
    reader = UserFactory(username="bench-radiologist", role="radiologist")
    token = Token.objects.create(user=reader).key

    start = time.perf_counter()
    small = phantom_slices(64, args.slices, tmp / "small")
    for n in range(args.studies):
        seed_study(uploader, small, n)
    big_study = seed_study(
        uploader, phantom_slices(args.size, args.slices, tmp / "big"), 99999
    )
    print(f"seeded {args.studies + 1} studies in {time.perf_counter() - start:.0f} s")

    server = LiveServerThread("127.0.0.1", _StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    base = f"http://127.0.0.1:{server.port}/dicomweb"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    try:
        report(args, session, base, big_study, token, dicomweb_index)
    finally:
        server.terminate()


def report(args, session, base, big_study, token, dicomweb_index) -> None:
    from dicomweb_client.api import DICOMwebClient

    json_accept = {"Accept": JSON}

    def qido(params):
        def call():
            response = session.get(
                f"{base}/studies", params=params, headers=json_accept
            )
            response.raise_for_status()
            return response.json()

        return call

    from django.test import Client

    inprocess = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def in_process(params):
        return lambda: inprocess.get("/dicomweb/studies", params, HTTP_ACCEPT=JSON)

    ohif = {"limit": 101, "offset": 0, "includefield": "00081030,00080060"}
    root = base.rsplit("/dicomweb", 1)[0]
    _, floor = timed(lambda: session.get(f"{root}/healthz").raise_for_status(), 5)
    print(f"\nlive server floor: GET /healthz {floor * 1000:.0f} ms (median)")
    print(
        "\n| Request | studies in answer | cold (nothing cached) "
        "| new process (shared cache) | warm (median) | warm, in process (no HTTP) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, params in (
        ("GET /dicomweb/studies (all)", {}),
        ("GET /dicomweb/studies?limit=101&includefield=… (OHIF)", ohif),
        ("GET /dicomweb/studies?PatientID=MRN00042", {"PatientID": "MRN00042"}),
    ):
        forget_indexes(dicomweb_index)
        count = len(qido(params)())
        forget_indexes(dicomweb_index)
        cold, _ = timed(qido(params), 0)
        dicomweb_index.clear_cache()  # this process's copy only
        shared, warm = timed(qido(params), args.repeat)
        _, local = timed(in_process(params), args.repeat)
        print(
            f"| {label} | {count} | {cold * 1000:.0f} ms | {shared * 1000:.0f} ms "
            f"| {warm * 1000:.0f} ms | {local * 1000:.0f} ms |"
        )

    uid = big_study.study_instance_uid
    total_mb = sum(f.size for f in big_study.files.all()) / 1e6
    dicom_accept = {"Accept": 'multipart/related; type="application/dicom"'}

    def raw():
        with session.get(
            f"{base}/studies/{uid}", headers=dicom_accept, stream=True
        ) as r:
            r.raise_for_status()
            for _ in r.iter_content(1 << 20):
                pass

    client = DICOMwebClient(url=base, headers={"Authorization": f"Bearer {token}"})
    _, raw_s = timed(raw, args.repeat)
    _, client_s = timed(lambda: client.retrieve_study(uid), args.repeat)
    series = client.search_for_series(uid)[0]["0020000E"]["Value"][0]
    sops = [i["00080018"]["Value"][0] for i in client.search_for_instances(uid, series)]

    def frames():
        for sop in sops:
            client.retrieve_instance_frames(uid, series, sop, frame_numbers=[1])

    _, frames_s = timed(frames, max(1, args.repeat // 2))
    print(
        f"\n| WADO-RS, {args.slices} slices of {args.size}², {total_mb:.1f} MB "
        "| seconds (median) | MB/s |"
    )
    print("| --- | ---: | ---: |")
    print(f"| study, requests streaming | {raw_s:.2f} | {total_mb / raw_s:.0f} |")
    print(
        f"| study, dicomweb-client retrieve_study (parsed) | {client_s:.2f} "
        f"| {total_mb / client_s:.0f} |"
    )
    print(
        f"| every frame, one request each ({len(sops)}) | {frames_s:.2f} "
        f"| {total_mb / frames_s:.0f} |"
    )


if __name__ == "__main__":
    main()
