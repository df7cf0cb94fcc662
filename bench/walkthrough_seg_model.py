"""Show the shipped hemorrhage model at work in a real portal, in a browser (issue 12).

Starts a portal of its own on a fresh DATA_DIR (SQLite and the folder broker; with
--postgres, a fresh database on that server, dropped afterwards): migrate, static
files, the demo accounts, `manage.py model_ensure --path MODEL`, then
`scripts/runportal.py` (gunicorn, a Celery worker and beat, as `make run` starts
them). The demo clinician uploads a ct-ich patient with a bleed and one without,
as CT DICOM series written by bench/ct_ich_as_dicom.py (HU, 0.45 mm pixels, 5 mm
slices; written when missing);
the demo radiologist opens the worklist and the bleed study on the slice the viewer
opens on, then a further bleed slice, and downloads the PDF report, which is rendered
with `pdftoppm -png -r 80`. The summary gives what the pages say (headline, volume),
the true bleed volume from ct-ich's masks under the stated spacing, which slice the
viewer opened on and whether the radiologist's mask marks it, and how much of each
outline lies on the mask. Every screenshot is numbered in --out; the *-vs-mask.png
images put the portal's outline (yellow) and the mask's edge (cyan) on one slice.

    .venv/bin/python bench/walkthrough_seg_model.py [--model models/ich-seg-ctich] \\
        [--bleed 094] [--normal 054] [--out var/walkthrough-seg] [--port 8765] \\
        [--postgres postgres://postgres@127.0.0.1:5432] [--keep-data]

--base-url and --credentials walk a portal that is already running instead (its
active model must then be the one to show). Everything written lies under --out,
inside var/ (never committed: the images are ct-ich's data). Needs the dev
requirements (Playwright), Debian's /usr/bin/chromium and poppler's pdftoppm.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# ct-ich as DICOM, and the other walkthroughs' sign-in, screenshots and upload.
from bench import ct_ich_as_dicom as converter  # noqa: E402
from bench.walkthrough_feedback import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    StepFailed,
    Walk,
    api_json,
    read_credentials,
)
from bench.walkthrough_lesion_model import upload, viewer_shot  # noqa: E402

#: Outline colour of diagnosis.ml_adapter.CONTOUR_RGBA, and the mask's edge colour
#: in the comparison images.
OUTLINE_RGB = (255, 221, 0)
MASK_RGB = (0, 230, 255)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/ich-seg-ctich")
    parser.add_argument("--ct-ich", default="../shared/data/ct-ich")
    parser.add_argument("--dicom", default="var/ct-ich-dicom", help="converted series")
    parser.add_argument("--bleed", default="094", help="ct-ich patient with a bleed")
    parser.add_argument("--normal", default="054", help="ct-ich patient without")
    parser.add_argument("--out", default="var/walkthrough-seg")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--postgres",
        help="PostgreSQL server URL: run on a fresh database there (default: SQLite)",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep DATA_DIR (and the database)"
    )
    parser.add_argument("--base-url", help="walk a running portal instead")
    parser.add_argument("--credentials", help="its demo-credentials.txt")
    parser.add_argument(
        "--study-timeout", type=float, default=600, help="seconds to ready"
    )
    parser.add_argument("--headed", action="store_true", help="show the browser")
    args = parser.parse_args(argv)
    args.bleed, args.normal = f"{int(args.bleed):03d}", f"{int(args.normal):03d}"
    if bool(args.base_url) != bool(args.credentials):
        parser.error("--base-url and --credentials go together")
    return args


# --- the portal --------------------------------------------------------------------
def manage(env: dict[str, str], *command: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise StepFailed(
            f"manage.py {' '.join(command)} failed:\n{done.stderr[-3000:]}"
        )
    return done.stdout


@contextlib.contextmanager
def fresh_database(server: str | None, keep: bool) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database on ``server`` (dropped afterwards
    unless ``keep``), or "" for the portal's default SQLite."""
    if not server:
        yield ""
        return
    import psycopg

    name = f"walkthrough_seg_{time.strftime('%Y%m%d_%H%M%S')}"
    admin = f"{server.rstrip('/')}/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rstrip('/')}/{name}"
    finally:
        if not keep:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def portal(args: argparse.Namespace, summary: dict) -> Iterator[Path]:
    """A portal on a fresh DATA_DIR (and database) with MODEL active; yields its
    credentials file, then stops it and, unless --keep-data, removes its data."""
    out = Path(args.out).resolve()
    with contextlib.ExitStack() as stack:  # unwinds: portal, database, DATA_DIR
        data = Path(tempfile.mkdtemp(prefix="portal-", dir=out))
        if not args.keep_data:
            stack.callback(shutil.rmtree, data, ignore_errors=True)
        database = stack.enter_context(fresh_database(args.postgres, args.keep_data))
        env = portal_env(args, data=data, database=database)
        started = time.monotonic()
        for command in (
            ("migrate", "--noinput"),
            ("static_ensure",),
            ("demo_users",),
            ("model_ensure", "--path", str(Path(args.model).resolve())),
        ):
            text = manage(env, *command)
        summary["model_ensure"] = text.strip().splitlines()[-1]
        stack.enter_context(running(env, port=args.port, log=out / "portal.log"))
        summary["portal"] = (
            f"DATA_DIR {data}, {database.rsplit('/', 1)[-1] if database else 'SQLite'}"
            f"; up {time.monotonic() - started:.0f} s after migrate started; log "
            f"{out / 'portal.log'}"
        )
        yield data / "demo-credentials.txt"


def portal_env(args: argparse.Namespace, *, data: Path, database: str) -> dict:
    return {
        **os.environ,
        "DATA_DIR": str(data),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database,
        # Collected once for every run: static_ensure skips it when nothing changed.
        "STATIC_ROOT": str(Path(args.out).resolve() / "staticfiles"),
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
        "SHIPPED_MODEL_DIR": str(Path(args.model).resolve()),
    }


@contextlib.contextmanager
def running(env: dict, *, port: int, log: Path) -> Iterator[None]:
    """scripts/runportal.py (gunicorn, a Celery worker, beat) until the block ends."""
    with open(log, "w") as stream:
        process = subprocess.Popen(
            [sys.executable, "scripts/runportal.py", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
            yield
        finally:
            process.send_signal(signal.SIGTERM)  # runportal stops its children
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StepFailed("the portal stopped while starting (see portal.log)")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310
        ):
            if response.status == 200:
                return
        time.sleep(1)
    raise StepFailed(f"the portal did not answer {url} within {timeout:.0f} s")


# --- ct-ich ------------------------------------------------------------------------
def patient_series(args: argparse.Namespace, code: str) -> list[Path]:
    """The converted DICOM series of a ct-ich patient, written when missing."""
    folder = Path(args.dicom) / code
    files = sorted(folder.glob("IM*.dcm"))
    if not files:
        converter.main(["--patients", code, "--data", args.ct_ich, "--out", args.dicom])
        files = sorted(folder.glob("IM*.dcm"))
    if not files:
        raise StepFailed(f"no DICOM series for ct-ich patient {code} in {folder}")
    return files


def ct_ich_patient(args: argparse.Namespace, code: str) -> converter.Patient:
    return converter.read_patients(Path(args.ct_ich), [int(code)])[0]


def mask_of(patient: converter.Patient, index: int) -> np.ndarray:
    """(H, W) bool mask of the study's slice ``index`` (slice index + 1 in ct-ich:
    the series runs from the skull base up, as load_study orders it)."""
    from PIL import Image

    return np.asarray(Image.open(patient.masks[index])) > 0


def outline_on_mask(overlay_png: bytes, mask: np.ndarray) -> dict[str, object]:
    """How the portal's outline overlay (RGBA: a line and a faint fill) lies on the
    radiologist's mask: the share of its drawn pixels within 5 px of the mask, and
    the share of the mask it covers."""
    import cv2
    from PIL import Image

    drawn = np.asarray(Image.open(io.BytesIO(overlay_png)).convert("RGBA"))[..., 3] > 0
    if drawn.shape != mask.shape:
        return {"problem": f"overlay {drawn.shape} vs mask {mask.shape}"}
    near = cv2.dilate(mask.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    return {
        "drawn_px": int(drawn.sum()),
        "drawn_on_bleed": round(float((drawn & near).sum() / max(1, drawn.sum())), 2),
        "mask_px": int(mask.sum()),
        "mask_covered": round(float((drawn & mask).sum() / max(1, mask.sum())), 2),
    }


def comparison_png(path: Path, slice_png: bytes, overlay: bytes, mask: np.ndarray):
    """The slice with the portal's outline as the viewer draws it and the mask's
    edge in cyan, side by side with the bare slice."""
    import cv2
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(slice_png)).convert("RGB"))
    rgba = np.asarray(Image.open(io.BytesIO(overlay)).convert("RGBA")).astype(float)
    alpha = rgba[..., 3:] / 255.0
    drawn = (grey * (1 - alpha) + rgba[..., :3] * alpha).astype(np.uint8)
    edges, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
    )
    cv2.drawContours(drawn, edges, -1, MASK_RGB, thickness=1)
    Image.fromarray(np.hstack([grey, drawn])).save(path)


# --- steps -------------------------------------------------------------------------
def step_uploads(walk: Walk) -> dict[str, dict]:
    records = {}
    for kind, code in (("bleed", walk.args.bleed), ("normal", walk.args.normal)):
        files = patient_series(walk.args, code)
        records[kind] = upload(
            walk,
            files,
            f"CTICH-{code}",
            "clinician-upload" if kind == "bleed" else None,
        )
        if records[kind]["status"] != "ready":
            raise StepFailed(
                f"CTICH-{code} is {records[kind]['status']}: "
                f"{records[kind]['study'].get('error_message')}"
            )
        walk.summary[f"CTICH-{code} upload to ready"] = f"{records[kind]['seconds']} s"
    walk.shot(records["normal"]["page"], "clinician-normal-study")
    return records


def step_worklist(walk: Walk) -> Page:
    page = walk.as_user("demo-radiologist")
    page.goto(f"{walk.base}/studies/")
    page.get_by_test_id("study-table").wait_for()
    walk.shot(page, "radiologist-worklist")
    rows = page.get_by_test_id("study-table").locator("tbody tr").all_inner_texts()
    walk.summary["worklist rows"] = [" ".join(r.split())[:160] for r in rows if r]
    return page


def open_study(walk: Walk, page: Page, code: str, study_id: int) -> dict:
    """Open a study from the worklist; what its AI panel and viewer say."""
    page.goto(f"{walk.base}/studies/")
    page.get_by_role("link", name=f"CTICH-{code}", exact=True).first.click()
    page.wait_for_url(f"**/studies/{study_id}/")
    settle_viewer(page)

    def text(test_id: str) -> str:
        found = page.get_by_test_id(test_id)
        return " ".join(found.first.inner_text().split()) if found.count() else ""

    viewer = page.locator("#viewer")
    return {
        "headline": text("ai-finding"),
        "volume": text("ai-volume"),
        "probability": text("ai-probability"),
        "layer": text("overlay-toggle"),
        "start": int(viewer.get_attribute("data-start")),
        "outlined": [
            int(i)
            for i in (viewer.get_attribute("data-heatmaps") or "").split(",")
            if i
        ],
        "label": page.locator("#slice-label").inner_text().strip(),
        "outline_shown": page.locator("#heatmap-img").is_visible(),
    }


def settle_viewer(page: Page) -> None:
    """Wait until the slice and, when shown, its overlay have loaded."""
    page.locator("#viewer").wait_for()
    loaded = "img => img.complete || new Promise(r => img.addEventListener('load', r))"
    page.wait_for_function(
        "() => { const v = document.getElementById('viewer'); "
        "return v.dataset.current && v.dataset.loaded !== '0'; }"
    )
    if page.locator("#heatmap-img").is_visible():
        page.locator("#heatmap-img").evaluate(loaded)
    page.wait_for_timeout(300)


def slice_report(walk: Walk, page: Page, study_id: int, index: int, name: str) -> str:
    """Screenshot of the viewer on ``index``, the outline against the mask (numbers
    and a comparison image); returns a line for the summary."""
    patient = walk.patient
    viewer_shot(walk, page, name)
    labelled = (index + 1) in patient.bleed_slices
    line = (
        f"slice {index + 1} (ct-ich {patient.code}/{index + 1:02d}: "
        f"{'bleed' if labelled else 'NO bleed'} in labels.csv)"
    )
    overlay = page.request.get(
        f"{walk.base}/studies/{study_id}/slices/{index}/heatmap.png"
    )
    if not overlay.ok:
        return f"{line}: no outline on this slice"
    mask = mask_of(patient, index)
    grey = page.request.get(
        f"{walk.base}/studies/{study_id}/slices/{index}.png?window=brain"
    )
    path = Path(walk.args.out) / f"{len(walk.shots) + 1:02d}-{name}-vs-mask.png"
    comparison_png(path, grey.body(), overlay.body(), mask)
    walk.shots.append(path)
    return f"{line}: outline {outline_on_mask(overlay.body(), mask)}"


def step_bleed_study(walk: Walk, page: Page, record: dict) -> None:
    code = walk.args.bleed
    seen = open_study(walk, page, code, record["id"])
    walk.summary["bleed page"] = seen
    walk.shot(page, "radiologist-bleed-study")
    start = seen["start"]
    probabilities = record["study"]["slice_probabilities"]
    if probabilities[start] is None:
        walk.summary["PROBLEM start slice"] = f"slice {start + 1} was not read"
    if not seen["outline_shown"]:
        walk.summary["PROBLEM start outline"] = f"no outline on slice {start + 1}"
    walk.summary["opened on"] = slice_report(
        walk, page, record["id"], start, "bleed-viewer-opened"
    )
    if start + 1 not in walk.patient.bleed_slices:
        walk.summary["PROBLEM start slice"] = (
            f"slice {start + 1} has no bleed in labels.csv"
        )
    further = further_bleed_slice(walk.patient, start, seen["outlined"])
    if further is None:
        walk.summary["further bleed slice"] = "no other slice has a bleed"
        return
    page.locator(f'.prob-bar[data-index="{further}"]').click()
    settle_viewer(page)
    walk.summary["further bleed slice"] = slice_report(
        walk, page, record["id"], further, f"bleed-viewer-slice-{further + 1}"
    )


def further_bleed_slice(
    patient: converter.Patient, start: int, outlined: list[int]
) -> int | None:
    """Another slice the radiologist's mask marks: the largest bleed among those the
    model outlined, else the largest bleed."""
    areas = {
        s - 1: int(mask_of(patient, s - 1).sum())
        for s in patient.bleed_slices
        if s - 1 != start
    }
    if not areas:
        return None
    pool = {i: a for i, a in areas.items() if i in outlined} or areas
    return max(pool, key=pool.get)


def step_normal_study(walk: Walk, page: Page, record: dict) -> None:
    seen = open_study(walk, page, walk.args.normal, record["id"])
    walk.summary["normal page"] = seen
    if "Suspected" in seen["headline"]:
        walk.summary["PROBLEM normal study"] = f"flagged: {seen['headline']}"
    walk.shot(page, "radiologist-normal-study")


def step_report(walk: Walk, page: Page, record: dict, code: str) -> None:
    """Download the PDF through the study page's link and render its pages."""
    page.goto(f"{walk.base}/studies/{record['id']}/")
    link = page.locator('a[href*="report.pdf"]').first
    if not link.count():
        raise StepFailed(f"the study page of CTICH-{code} offers no PDF")
    response = page.request.get(f"{walk.base}{link.get_attribute('href')}")
    if not response.ok or response.headers.get("content-type") != "application/pdf":
        raise StepFailed(f"the PDF of CTICH-{code} answered {response.status}")
    out = Path(walk.args.out)
    pdf = out / f"report-CTICH-{code}.pdf"
    pdf.write_bytes(response.body())
    for old in out.glob(f"report-CTICH-{code}-*.png"):
        old.unlink()
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        raise StepFailed("pdftoppm is missing (apt-get install poppler-utils)")
    subprocess.run(
        [pdftoppm, "-png", "-r", "80", str(pdf), str(out / f"report-CTICH-{code}")],
        check=True,
    )
    pages = sorted(out.glob(f"report-CTICH-{code}-*.png"))
    walk.shots.extend(pages)
    walk.summary[f"CTICH-{code} PDF"] = f"{pdf} ({len(pages)} page(s))"


def truth(args: argparse.Namespace, code: str) -> str:
    pixels, volume = converter.mask_volume_ml(ct_ich_patient(args, code).masks)
    return f"{volume:.2f} mL ({pixels} mask pixels)" if pixels else "no bleed, 0 mL"


def walk_portal(walk: Walk) -> None:
    walk.passwords = read_credentials(Path(walk.args.credentials))
    walk.patient = ct_ich_patient(walk.args, walk.args.bleed)
    walk.step = "uploads"
    records = step_uploads(walk)
    walk.step = "worklist"
    page = step_worklist(walk)
    walk.step = "bleed study"
    step_bleed_study(walk, page, records["bleed"])
    walk.step = "normal study"
    step_normal_study(walk, page, records["normal"])
    walk.step = "reports"
    step_report(walk, page, records["bleed"], walk.args.bleed)
    for kind, code in (("bleed", walk.args.bleed), ("normal", walk.args.normal)):
        result = api_json(walk, page, f"/api/v1/studies/{records[kind]['id']}/")
        result = result.get("result") or {}
        walk.summary[f"CTICH-{code} figures"] = (
            f"page headline {walk.summary[f'{kind} page']['headline']!r}; "
            f"volume shown {walk.summary[f'{kind} page']['volume'] or '(none)'} "
            f"(API {result.get('volume_ml')}); true volume {truth(walk.args, code)}; "
            f"p={result.get('probability')}, model {result.get('model_version')}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=not args.headed, args=CHROMIUM_ARGS
        )
        walk = Walk(args=args, browser=browser, passwords={}, summary=summary)
        try:
            with contextlib.ExitStack() as stack:
                if not args.base_url:
                    args.credentials = str(stack.enter_context(portal(args, summary)))
                    args.base_url = f"http://127.0.0.1:{args.port}"
                try:
                    walk_portal(walk)
                except (StepFailed, PlaywrightTimeout) as exc:
                    print(f"\nFAILED at step '{walk.step}': {exc}", file=sys.stderr)
                    for page in walk.pages.values():
                        walk.shot(page, f"failed-{walk.step.replace(' ', '-')}")
                    return 1
        except StepFailed as exc:  # the portal did not start
            print(f"\nFAILED starting the portal: {exc}", file=sys.stderr)
            return 1
        finally:
            browser.close()
    print("\nSummary")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    print("Images:\n  " + "\n  ".join(str(s) for s in walk.shots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
