"""Walk the feedback loop of issue 6 through a running portal in a real browser.

A clinician uploads a study; a radiologist disagrees with the AI; a second radiologist
confirms the feedback case; an admin registers a training data set, runs a retraining
job and watches it, compares the candidate with the active model on the locked split
and promotes it; the next uploaded study must be analysed by the new version. Every
step leaves a numbered full-page screenshot in --out, and a summary with the timings,
model versions and the gate verdict is printed at the end. Exit code 1 names the step
that failed.

Start the portal (`make run`, which creates the demo accounts), then, from the project
folder:

    .venv/bin/python bench/walkthrough_feedback.py \\
        [--base-url http://127.0.0.1:8000] [--credentials var/demo-credentials.txt] \\
        [--study ../shared/data/dicom-head-phantom/std-brain-5mm] \\
        [--dataset-folder var/training-data/phantoms] [--epochs 10] \\
        [--out test-artifacts/feedback-loop/]

The data set folder must lie under the portal's TRAINING_DATA_DIRS; when it is missing
a small synthetic set is written there with `python -m ml synth` (--synth: 24 studies of
24 slices, 128 px, on which a 10-epoch job at 128 px takes well under a minute on two
cores; 64 px would end before a screenshot could show it running). Each upload is a
copy of the study with fresh DICOM UIDs and patient ID, so that a second run (and the
second upload of one folder) makes a new study instead of leading to the existing one.
Needs the dev requirements (Playwright) and Debian's /usr/bin/chromium; nothing is
downloaded.
"""

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
USERS = ("demo-admin", "demo-radiologist", "demo-radiologist2", "demo-clinician")


class StepFailed(Exception):
    """A step of the walkthrough did not reach what the user must see."""


@dataclass
class Walk:
    args: argparse.Namespace
    browser: Browser
    passwords: dict[str, str]
    stamp: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S"))
    shots: list[Path] = field(default_factory=list)
    pages: dict[str, Page] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)
    step: str = "start"

    @property
    def base(self) -> str:
        return self.args.base_url.rstrip("/")

    def shot(self, page: Page, name: str) -> Path:
        path = Path(self.args.out) / f"{len(self.shots) + 1:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        self.shots.append(path)
        print(f"    screenshot {path}", flush=True)
        return path

    def as_user(self, username: str) -> Page:
        """A signed-in page of its own browser context per user, kept for reuse."""
        if username not in self.pages:
            self.pages[username] = sign_in(self, username)
        return self.pages[username]


# --- setup -----------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--credentials", default="var/demo-credentials.txt")
    parser.add_argument(
        "--study",
        nargs="+",
        default=["../shared/data/dicom-head-phantom/std-brain-5mm"],
        help="study folder(s): the first is uploaded first, the last after the "
        "promotion (one folder serves both)",
    )
    parser.add_argument("--dataset-folder", default="var/training-data/phantoms")
    parser.add_argument(
        "--synth",
        type=int,
        nargs=3,
        default=(24, 24, 128),
        metavar=("STUDIES", "SLICES", "PIXELS"),
        help="size of the synthetic set written when --dataset-folder is missing",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, choices=(64, 128, 224), default=128)
    parser.add_argument("--out", default="test-artifacts/feedback-loop/")
    parser.add_argument(
        "--study-timeout", type=float, default=900, help="seconds to ready"
    )
    parser.add_argument("--job-timeout", type=float, default=3600, help="seconds")
    parser.add_argument("--headed", action="store_true", help="show the browser")
    return parser.parse_args(argv)


def read_credentials(path: Path) -> dict[str, str]:
    """`  radiologist  demo-radiologist   <password>` lines -> {username: password}."""
    if not path.exists():
        raise StepFailed(f"no credentials file at {path} (make run writes it)")
    found = dict(
        re.findall(r"^\s*\w+\s+(demo-[\w-]+)\s+(\S+)\s*$", path.read_text(), re.M)
    )
    missing = [u for u in USERS if u not in found]
    if missing:
        raise StepFailed(f"{path} has no password for {', '.join(missing)}")
    return found


def fresh_copy(folder: Path, patient_id: str, dest: Path) -> list[Path]:
    """Copy a study with new UIDs and patient ID in each DICOM file; other files are
    copied unchanged. Returns the copied files."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import generate_uid

    if not folder.is_dir():
        raise StepFailed(f"study folder {folder} does not exist")
    dest.mkdir(parents=True)
    study_uid, series = generate_uid(), {}
    files = []
    for source in sorted(p for p in folder.rglob("*") if p.is_file()):
        target = dest / source.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            ds = pydicom.dcmread(source)
        except InvalidDicomError:
            shutil.copy2(source, target)
        else:
            ds.PatientID = patient_id
            ds.StudyInstanceUID = study_uid
            old_series = ds.get("SeriesInstanceUID", "")
            ds.SeriesInstanceUID = series.setdefault(old_series, generate_uid())
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(target)
        files.append(target)
    if not files:
        raise StepFailed(f"study folder {folder} is empty")
    return files


def ensure_dataset_folder(folder: Path, synth: tuple[int, int, int]) -> None:
    """A small synthetic set of PNG phantoms unless the folder already has one."""
    if folder.is_dir() and any(folder.iterdir()):
        print(f"    data set folder {folder} exists; using it", flush=True)
        return
    studies, slices, pixels = synth
    print(
        f"    writing {studies} synthetic phantom studies of {slices} slices, "
        f"{pixels} px, to {folder}",
        flush=True,
    )
    command = [
        sys.executable, "-m", "ml", "synth", "--out", str(folder),
        "--studies", str(studies), "--slices", str(slices), "--size", str(pixels),
        "--format", "png", "--masks", "none", "--seed", "7",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise StepFailed(f"python -m ml synth failed:\n{done.stderr[-2000:]}")


# --- page helpers ------------------------------------------------------------------
def sign_in(walk: Walk, username: str) -> Page:
    context = walk.browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{walk.base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(walk.passwords[username])
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    if "/accounts/login/" in page.url:
        raise StepFailed(f"{username} could not sign in: {alert_text(page)}")
    return page


def alert_text(page: Page) -> str:
    """What the page says went wrong: alerts, form errors and flash messages."""
    errors = page.locator(
        ".alert-danger, .alert-warning, .invalid-feedback, .errorlist, .text-danger"
    )
    texts = [t.strip() for t in errors.all_inner_texts() if t.strip()]
    return " | ".join(texts) or "(no message on the page)"


def submit(page: Page, button) -> None:
    """Click a button that posts a form and wait for the page that answers."""
    with page.expect_navigation():
        button.click()


def wait_until(check, *, timeout: float, every: float = 2.0, what: str):
    """Call `check` until it returns something truthy; StepFailed after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise StepFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def api_json(walk: Walk, page: Page, path: str) -> dict:
    """GET with the page's session (its user's scoping applies)."""
    response = page.request.get(f"{walk.base}{path}")
    if not response.ok:
        raise StepFailed(f"GET {path} answered {response.status}")
    return response.json()


def draw_charts(page: Page) -> None:
    """Give Plotly a moment to draw before a screenshot."""
    if page.locator("[data-figure-id], #training-chart").count():
        with contextlib.suppress(PlaywrightTimeout):
            page.locator(".main-svg").first.wait_for(timeout=10_000)
    page.wait_for_timeout(500)


# --- steps -------------------------------------------------------------------------
def upload_study(
    walk: Walk, folder: Path, patient_id: str, shot: str
) -> tuple[Page, int, float]:
    """The clinician's upload through the page; returns the study page, its id and
    when the upload button was clicked."""
    page = walk.as_user("demo-clinician")
    tmp = Path(tempfile.mkdtemp(prefix="walk-upload-"))
    try:
        files = fresh_copy(folder, patient_id, tmp / folder.name)
        page.get_by_test_id("role-nav").get_by_role("link", name="Upload").click()
        page.wait_for_url("**/studies/upload/")
        page.get_by_label("Choose files").set_input_files(files)
        page.get_by_label("Patient ID / MRN").fill(patient_id)
        page.get_by_text(f"{len(files)} file(s)").wait_for()
        walk.shot(page, shot)
        with page.expect_response(
            lambda r: r.url.endswith("/studies/upload/") and r.request.method == "POST",
            timeout=300_000,
        ) as answer:
            clicked = time.monotonic()
            page.get_by_role("button", name="Upload and analyse").click()
        response = answer.value
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # The page's script follows the answer at once, so its body is gone: the status
    # says whether the study is new, the address which one it is.
    if response.status not in (200, 201):
        page.locator("#upload-messages .alert").wait_for()
        raise StepFailed(f"upload answered {response.status}: {alert_text(page)}")
    page.wait_for_url(re.compile(r"/studies/\d+/$"))
    study_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    if response.status == 200:
        raise StepFailed(f"these files were uploaded before (study {study_id})")
    return page, study_id, clicked


def wait_study_ready(walk: Walk, page: Page, study_id: int) -> dict:
    """Wait on the study page (it reloads itself when the analysis ends)."""
    done = '#study-status[data-status="ready"], #study-status[data-status="failed"]'
    try:
        page.locator(done).wait_for(timeout=walk.args.study_timeout * 1000)
    except PlaywrightTimeout:
        raise StepFailed(
            f"study {study_id} was not analysed within {walk.args.study_timeout} s"
        ) from None
    draw_charts(page)
    study = api_json(walk, page, f"/api/v1/studies/{study_id}/")
    if study["status"] != "ready":
        raise StepFailed(f"study {study_id} failed: {study['error_message']}")
    return study


def step_upload_first(walk: Walk) -> int:
    patient_id = f"WALK-{walk.stamp}-A"
    page, study_id, clicked = upload_study(
        walk, Path(walk.args.study[0]), patient_id, "clinician-upload-form"
    )
    walk.shot(page, "clinician-study-processing")
    study = wait_study_ready(walk, page, study_id)
    walk.summary["upload_to_ready_s"] = round(time.monotonic() - clicked, 1)
    walk.summary["first_study"] = study_id
    walk.summary["first_result_model"] = study["result"]["model_version"]
    walk.summary["patient_id"] = patient_id
    walk.shot(page, "clinician-study-ready")
    return study_id


def step_disagree(walk: Walk, study_id: int) -> int:
    """demo-radiologist reads the AI label on the study page and records the other
    one; returns the feedback case this opens."""
    page = walk.as_user("demo-radiologist")
    page.get_by_test_id("role-nav").get_by_role("link", name="Worklist").click()
    page.wait_for_url("**/studies/")
    link = page.get_by_role("link", name=walk.summary["patient_id"], exact=True)
    if not link.count():  # not on the first page of a busy worklist: search for it
        page.goto(f"{walk.base}/studies/?patient_id={walk.summary['patient_id']}")
    walk.shot(page, "radiologist-worklist")
    link.click()
    page.wait_for_url(f"**/studies/{study_id}/")
    ai_label = page.get_by_test_id("ai-panel").locator("[data-ai-label]")
    ai = ai_label.get_attribute("data-ai-label")
    walk.summary["ai_label_first_study"] = f"{ai} ({ai_label.inner_text().strip()})"
    mine = "No stroke" if ai == "stroke" else "Stroke"
    form = page.get_by_test_id("review-form")
    form.get_by_label(mine, exact=True).check()
    if mine == "Stroke":
        form.get_by_label("Stroke type").select_option(label="Ischemic")
    form.get_by_label("Impression").fill(
        f"Walkthrough: the reader finds '{mine}', the AI said '{ai}'."
    )
    submit(page, form.get_by_role("button", name="Save reading"))
    page.wait_for_url(f"**/studies/{study_id}/")
    reading = page.get_by_test_id("current-review")
    if "differs from the AI" not in reading.inner_text():
        raise StepFailed(
            f"the review was not saved as a disagreement: {alert_text(page)}"
        )
    case = page.get_by_test_id("feedback-case")
    if not case.count():
        raise StepFailed("the disagreeing review opened no feedback case")
    walk.shot(page, "radiologist-disagrees")
    walk.summary["reader_label"] = mine
    return int(re.search(r"case (\d+)", case.first.inner_text()).group(1))


def step_confirm(walk: Walk, case_id: int) -> None:
    page = walk.as_user("demo-radiologist2")
    page.get_by_test_id("role-nav").get_by_role("link", name="Feedback").click()
    page.wait_for_url("**/feedback/cases/")
    row = page.get_by_test_id(f"case-{case_id}")
    if not row.count():
        raise StepFailed(f"feedback case {case_id} is not in the pending queue")
    walk.shot(page, "radiologist2-case-queue")
    submit(page, row.get_by_role("button", name="Confirm"))
    page.wait_for_url("**/feedback/cases/")
    if not page.get_by_text(f"Case {case_id} confirmed").count():
        raise StepFailed(f"case {case_id} was not confirmed: {alert_text(page)}")
    walk.shot(page, "radiologist2-case-confirmed")
    page.get_by_role("link", name="confirmed").click()
    page.wait_for_url("**/feedback/cases/?status=confirmed")
    walk.shot(page, "radiologist2-confirmed-cases")


def step_register_dataset(walk: Walk) -> str:
    folder = Path(walk.args.dataset_folder).resolve()
    ensure_dataset_folder(folder, walk.args.synth)
    page = walk.as_user("demo-admin")
    page.goto(f"{walk.base}/feedback/datasets/")
    name = f"walkthrough-{walk.stamp}"
    page.get_by_label(re.compile(r"^\s*Name\b")).fill(name)
    page.get_by_label("Folder on the server").fill(str(folder))
    submit(page, page.get_by_role("button", name="Register and index"))
    if not re.search(r"/feedback/datasets/\d+/$", page.url):
        raise StepFailed(f"the data set was not registered: {alert_text(page)}")
    status = page.get_by_test_id("dataset-status")

    def indexed() -> bool:
        page.reload()
        return status.inner_text().strip() in ("Ready", "Failed")

    wait_until(indexed, timeout=600, every=3, what="the data set to be indexed")
    if status.inner_text().strip() != "Ready":
        raise StepFailed(f"indexing failed: {alert_text(page)}")
    counts = page.locator("dt:has-text('Images / scans') + dd").inner_text()
    walk.summary["dataset"] = f"{name}: images / scans / split groups {counts}"
    walk.summary["locked_split"] = page.get_by_test_id("locked-split").inner_text()
    walk.shot(page, "admin-dataset-indexed")
    return name


def start_job(walk: Walk, dataset: str) -> Page:
    page = walk.as_user("demo-admin")
    page.goto(f"{walk.base}/feedback/jobs/")
    page.get_by_label(re.compile(r"^\s*Data ?set\b", re.I)).select_option(label=dataset)
    page.get_by_label("Architecture").select_option("custom_cnn")
    page.get_by_label("Include confirmed feedback cases").check()
    page.get_by_label(re.compile(r"^\s*Epochs\b")).fill(str(walk.args.epochs))
    page.get_by_label("Image size").select_option(str(walk.args.image_size))
    walk.shot(page, "admin-job-form")
    submit(page, page.get_by_role("button", name="Start retraining"))
    if not re.search(r"/feedback/jobs/\d+/$", page.url):
        raise StepFailed(f"the job did not start: {alert_text(page)}")
    return page


def step_retrain(walk: Walk, dataset: str) -> str:
    """Start a job and watch it: screenshots while it runs and at the end.
    Returns the candidate's name."""
    started = time.monotonic()
    page = start_job(walk, dataset)
    job_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    next_shot = 0  # epoch 0, then about a third of the way, two thirds, the end

    def finished() -> dict | None:
        nonlocal next_shot
        state = api_json(walk, page, f"/feedback/jobs/{job_id}/status.json")
        if state["status"] == "running" and state["epoch"] >= next_shot:
            seen = state["epoch"]
            next_shot = seen + max(1, state["epochs"] // 3)
            with contextlib.suppress(PlaywrightTimeout):  # the page polls every 2 s
                page.wait_for_function(
                    "([shown, note]) => document.getElementById('job-status')"
                    ".textContent.trim() === shown && document"
                    ".getElementById('job-note').textContent.trim() === note",
                    arg=[state["status_display"], state["note"]],
                    timeout=6_000,
                )
            draw_charts(page)
            walk.shot(page, f"admin-job-running-epoch-{seen}")
        return state if state["finished"] else None

    state = wait_until(
        finished, timeout=walk.args.job_timeout, every=1, what=f"job {job_id}"
    )
    walk.summary["job_wall_s"] = round(time.monotonic() - started, 1)
    walk.summary["job"] = f"job {job_id}: {state['status_display']}, " + (
        f"{len(state['history'])} epoch(s) of {state['epochs']}"
    )
    if state["status"] != "succeeded":
        page.reload()
        walk.shot(page, "admin-job-failed")
        raise StepFailed(f"job {job_id} ended {state['status']}: {state['error']}")
    promote = page.get_by_role("link", name="Review and promote")
    promote.wait_for(timeout=60_000)  # the page reloads itself when the job ends
    draw_charts(page)
    walk.shot(page, "admin-job-finished")
    wall = page.locator("dt:has-text('Wall time') + dd")
    walk.summary["job_wall_server"] = wall.inner_text() if wall.count() else "—"
    return page.locator("h2:has-text('Candidate:') a").inner_text().strip()


def step_promote(walk: Walk) -> float:
    """Compare on the candidate page and promote; returns the click's time."""
    page = walk.as_user("demo-admin")
    page.get_by_role("link", name="Review and promote").click()
    page.wait_for_url("**/feedback/models/*/")
    gate = page.get_by_test_id("gate")
    verdict = gate.inner_text().strip()
    walk.summary["gate"] = " ".join(verdict.split())
    comparison = page.get_by_test_id("comparison")
    if comparison.count():
        walk.summary["comparison"] = [
            " | ".join(c.strip() for c in row.split("\t"))
            for row in comparison.locator("tbody tr").all_inner_texts()
        ]
    draw_charts(page)
    walk.shot(page, "admin-candidate-vs-active")
    passes = "Promotion gate: passes" in verdict
    if not passes:
        page.get_by_label("Override reason").fill(
            "Walkthrough on synthetic phantoms: promoting to exercise the loop."
        )
    walk.summary["promotion"] = "gate passed" if passes else "override (gate refused)"
    clicked = time.monotonic()
    name = "Promote to active" if passes else "Promote anyway"
    submit(page, page.get_by_role("button", name=name))
    if (
        "/feedback/models/" not in page.url
        or not page.get_by_text("is now active").count()
    ):
        raise StepFailed(f"the promotion was refused: {alert_text(page)}")
    walk.shot(page, "admin-model-promoted")
    return clicked


def step_next_study(walk: Walk, promoted_at: float, candidate: str) -> None:
    page, study_id, clicked = upload_study(
        walk, Path(walk.args.study[-1]), f"WALK-{walk.stamp}-B", "clinician-upload-next"
    )
    study = wait_study_ready(walk, page, study_id)
    walk.summary["promotion_to_result_s"] = round(time.monotonic() - promoted_at, 1)
    walk.summary["next_upload_to_ready_s"] = round(time.monotonic() - clicked, 1)
    walk.summary["next_study"] = study_id
    model = study["result"]["model_version"]
    walk.summary["next_result_model"] = model
    walk.shot(page, "clinician-next-study-new-model")
    shown = page.get_by_test_id("ai-panel").locator("dt:has-text('Model') + dd")
    if model != candidate or candidate not in shown.inner_text():
        raise StepFailed(
            f"study {study_id} was analysed by {model!r} (page: "
            f"{shown.inner_text()!r}), not by the promoted {candidate!r}"
        )


# --- driver ------------------------------------------------------------------------
def step(walk: Walk, title: str, action, *args):
    walk.step = title
    print(f"Step {title}", flush=True)
    started = time.monotonic()
    value = action(walk, *args)
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)
    return value


def run(walk: Walk) -> None:
    study = step(walk, "1: clinician uploads a study", step_upload_first)
    case = step(walk, "2: radiologist disagrees with the AI", step_disagree, study)
    step(walk, "3: second radiologist confirms the case", step_confirm, case)
    dataset = step(walk, "4: admin registers the data set", step_register_dataset)
    candidate = step(walk, "5: admin runs a retraining job", step_retrain, dataset)
    walk.summary["candidate"] = candidate
    promoted_at = step(walk, "6: admin compares and promotes", step_promote)
    step(
        walk,
        "7: the next study is analysed by the new version",
        step_next_study,
        promoted_at,
        candidate,
    )


def print_summary(walk: Walk) -> None:
    s = walk.summary
    lines = [
        "",
        "Feedback loop walkthrough: " + ("PASSED" if s.get("passed") else "FAILED"),
        f"  portal                      {walk.base}",
        f"  first study                 {s.get('first_study')} "
        f"(patient {s.get('patient_id')}), AI {s.get('ai_label_first_study')}, "
        f"reader {s.get('reader_label')}",
        f"  upload -> ready             {s.get('upload_to_ready_s')} s",
        f"  model before                {s.get('first_result_model')}",
        f"  data set                    {s.get('dataset')}",
        f"  locked split                {s.get('locked_split')}",
        f"  retraining                  {s.get('job')}",
        f"  job wall time               {s.get('job_wall_s')} s from the start "
        f"click (server: {s.get('job_wall_server')})",
        f"  candidate                   {s.get('candidate')}",
        f"  gate verdict                {s.get('gate')}",
        *[f"    {row}" for row in s.get("comparison", [])],
        f"  promotion                   {s.get('promotion')}",
        f"  promotion -> first result   {s.get('promotion_to_result_s')} s "
        f"(study {s.get('next_study')}; its upload -> ready "
        f"{s.get('next_upload_to_ready_s')} s)",
        f"  next study analysed by      {s.get('next_result_model')}",
        f"  screenshots                 {len(walk.shots)} in {walk.args.out}",
    ]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("[0-9][0-9]-*.png"):  # the folder shows one run
        old.unlink()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=not args.headed
        )
        walk = Walk(args=args, browser=browser, passwords={})
        try:
            walk.passwords = read_credentials(Path(args.credentials))
            run(walk)
            walk.summary["passed"] = True
        except (StepFailed, PlaywrightError) as error:
            print(f"\nFAILED at step {walk.step}: {error}", file=sys.stderr)
            for username, page in walk.pages.items():
                # A page that cannot be captured must not hide the failure.
                with contextlib.suppress(Exception):
                    walk.shot(page, f"failure-{username}")
        finally:
            browser.close()
    print_summary(walk)
    return 0 if walk.summary.get("passed") else 1


if __name__ == "__main__":
    sys.exit(main())
