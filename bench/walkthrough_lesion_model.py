"""Show a lesion-feature model at work in a running portal, in a browser (issue 11).

The portal must already serve a `lesion_features` model as its active CT model
(`manage.py model_ensure --path var/runs/lf-bsct/model`). The demo clinician uploads a
ct-ich patient with a hemorrhage and one without (PNG slices, each patient one study)
and the plastic DICOM head phantom, which must fail as "not a head CT"; the demo
radiologist opens the worklist and the bleed study on its most suspicious slice with
the lesion map on; the demo admin opens the model registry. Every step leaves a
numbered screenshot in --out; the summary at the end gives the timings, the AI results
and, where ct-ich has a mask for the shown slice, how much of the lesion map lies on
the radiologist's hemorrhage mask (dilated by 5 px, as in the pointing game).

Start the portal, then, from the project folder:

    .venv/bin/python bench/walkthrough_lesion_model.py \\
        [--base-url http://127.0.0.1:8000] [--credentials var/demo-credentials.txt] \\
        [--ct-ich ../shared/data/ct-ich] [--bleed 094] [--normal 054] \\
        [--phantom ../shared/data/dicom-head-phantom/std-brain-5mm] \\
        [--out test-artifacts/lesion-model/]

PNG slices cannot be given fresh identities, so a second run against the same portal
leads to the studies the first run made (said in the summary; their timings are then
those of the first run). Needs the dev requirements (Playwright) and Debian's
/usr/bin/chromium; nothing is downloaded.
"""

import argparse
import csv
import io
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The feedback walkthrough's sign-in, upload copy and screenshot helpers.
from bench.walkthrough_feedback import (
    CHROMIUM,
    CHROMIUM_ARGS,
    StepFailed,
    Walk,
    alert_text,
    api_json,
    fresh_copy,
    read_credentials,
)

DONE = '#study-status[data-status="ready"], #study-status[data-status="failed"]'


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--credentials", default="var/demo-credentials.txt")
    parser.add_argument("--ct-ich", default="../shared/data/ct-ich")
    parser.add_argument("--bleed", default="094", help="ct-ich patient with a bleed")
    parser.add_argument("--normal", default="054", help="ct-ich patient without")
    parser.add_argument(
        "--phantom", default="../shared/data/dicom-head-phantom/std-brain-5mm"
    )
    parser.add_argument("--out", default="test-artifacts/lesion-model/")
    parser.add_argument(
        "--study-timeout", type=float, default=900, help="seconds to ready"
    )
    parser.add_argument("--headed", action="store_true", help="show the browser")
    return parser.parse_args(argv)


# --- ct-ich ------------------------------------------------------------------------
def patient_files(root: Path, patient: str) -> list[Path]:
    files = sorted((root / "images" / patient).glob("*.png"))
    if not files:
        raise StepFailed(f"no PNG slices in {root / 'images' / patient}")
    return files


def bleed_slices(root: Path, patient: str) -> dict[str, list[str]]:
    """{file name: subtypes} of the patient's bleed slices, from labels.csv."""
    subtypes = (
        "intraventricular", "intraparenchymal", "subarachnoid", "epidural", "subdural",
    )  # fmt: skip
    found = {}
    with open(root / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if int(row["patient"]) == int(patient) and row["any_hemorrhage"] == "1":
                found[Path(row["image"]).name] = [s for s in subtypes if row[s] == "1"]
    return found


def map_on_mask(overlay_png: bytes, mask_path: Path) -> dict[str, object]:
    """Where a lesion-map overlay (RGBA, alpha = sqrt of the map) falls against the
    radiologist's mask: the peak inside the mask dilated by 5 px, and the share of
    the map's mass and of its visible pixels (map >= 0.1) on it."""
    import cv2
    import numpy as np
    from PIL import Image

    mask = np.asarray(Image.open(mask_path).convert("L")) > 0
    alpha = np.asarray(Image.open(io.BytesIO(overlay_png)).convert("RGBA"))[..., 3]
    values = (alpha.astype(np.float32) / 255.0) ** 2
    if values.shape != mask.shape:
        values = cv2.resize(values, mask.shape[::-1], interpolation=cv2.INTER_LINEAR)
    near = cv2.dilate(mask.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    visible = values >= 0.1
    peak = np.unravel_index(int(np.argmax(values)), values.shape)
    total, shown, bleed = float(values.sum()), int(visible.sum()), int(mask.sum())
    return {
        "peak_on_bleed": bool(near[peak]),
        "peak_xy": (int(peak[1]), int(peak[0])),
        "mass_on_bleed": round(float(values[near].sum()) / total, 2) if total else 0.0,
        "visible_px": shown,
        "visible_on_bleed": round(float((visible & near).sum()) / max(1, shown), 2),
        "bleed_covered": round(float((visible & mask).sum()) / max(1, bleed), 2),
    }


def viewer_shot(walk: Walk, page: Page, name: str) -> None:
    """A screenshot of the viewer card alone, numbered with the page screenshots."""
    path = Path(walk.args.out) / f"{len(walk.shots) + 1:02d}-{name}.png"
    page.locator("#viewer").screenshot(path=path)
    walk.shots.append(path)
    print(f"    screenshot {path}", flush=True)


# --- steps -------------------------------------------------------------------------
def upload(walk: Walk, files: list[Path], patient_id: str, shot: str | None) -> dict:
    """The clinician's upload through the page; waits on the study page until the
    analysis ends and returns the study id, its status and the seconds it took."""
    page = walk.as_user("demo-clinician")
    page.goto(f"{walk.base}/studies/upload/")
    page.get_by_label("Choose files").set_input_files(files)
    page.get_by_label("Patient ID / MRN").fill(patient_id)
    page.get_by_text(f"{len(files)} file(s)").wait_for()
    if shot:
        walk.shot(page, shot)
    with page.expect_response(
        lambda r: r.url.endswith("/studies/upload/") and r.request.method == "POST",
        timeout=300_000,
    ) as answer:
        clicked = time.monotonic()
        page.get_by_role("button", name="Upload and analyse").click()
    response = answer.value
    if response.status not in (200, 201):
        page.locator("#upload-messages .alert").wait_for()
        raise StepFailed(f"upload answered {response.status}: {alert_text(page)}")
    page.wait_for_url(re.compile(r"/studies/\d+/$"))
    study_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    try:
        page.locator(DONE).wait_for(timeout=walk.args.study_timeout * 1000)
    except PlaywrightTimeout:
        raise StepFailed(
            f"study {study_id} was not analysed within {walk.args.study_timeout} s"
        ) from None
    seconds = round(time.monotonic() - clicked, 1)
    study = api_json(walk, page, f"/api/v1/studies/{study_id}/")
    return {
        "id": study_id,
        "page": page,
        "status": study["status"],
        "seconds": seconds if response.status == 201 else None,
        "existing": response.status == 200,
        "study": study,
    }


def describe(record: dict) -> str:
    study, result = record["study"], record["study"].get("result") or {}
    timing = (
        "an existing study (uploaded by an earlier run)"
        if record["existing"]
        else f"upload to {study['status']} {record['seconds']} s"
    )
    head = f"study {record['id']}: "
    if study["status"] != "ready":
        return f"{head}{study['status']}, {timing}: {study.get('error_message')}"
    return (
        f"{head}{result.get('label')} p={result.get('probability'):.3f} "
        f"(threshold {result.get('threshold'):.3f}, "
        f"model {result.get('model_version')}), {timing}"
    )


def step_uploads(walk: Walk) -> dict[str, dict]:
    root = Path(walk.args.ct_ich)
    bleed, normal = walk.args.bleed, walk.args.normal
    records = {}
    records["bleed"] = upload(
        walk, patient_files(root, bleed), f"CTICH-{bleed}", "clinician-upload-bleed"
    )
    walk.shot(records["bleed"]["page"], "clinician-bleed-study")
    records["normal"] = upload(
        walk, patient_files(root, normal), f"CTICH-{normal}", None
    )
    walk.shot(records["normal"]["page"], "clinician-normal-study")
    tmp = Path(tempfile.mkdtemp(prefix="walk-phantom-"))
    try:
        files = fresh_copy(Path(walk.args.phantom), f"PHANTOM-{walk.stamp}", tmp / "p")
        records["phantom"] = upload(walk, files, f"PHANTOM-{walk.stamp}", None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    page = records["phantom"]["page"]
    walk.shot(page, "clinician-phantom-study")
    if records["phantom"]["status"] != "failed":
        walk.summary["PROBLEM phantom"] = (
            f"the plastic phantom was analysed ({describe(records['phantom'])})"
        )
    else:
        error = page.get_by_test_id("study-error").inner_text().strip()
        walk.summary["phantom says"] = error
        if "head" not in error.lower():
            walk.summary["PROBLEM phantom"] = "its failure does not say 'not a head CT'"
        if page.get_by_test_id("ai-probability").count():
            walk.summary["PROBLEM phantom probability"] = "a failed study shows one"
    for name, record in records.items():
        walk.summary[f"{name} study"] = describe(record)
    return records


def step_worklist(walk: Walk) -> Page:
    page = walk.as_user("demo-radiologist")
    page.get_by_test_id("role-nav").get_by_role("link", name="Worklist").click()
    page.wait_for_url("**/studies/")
    page.get_by_test_id("study-table").wait_for()
    walk.shot(page, "radiologist-worklist")
    rows = page.get_by_test_id("study-table").locator("tbody tr").all_inner_texts()
    walk.summary["worklist order"] = [
        " ".join(r.split())[:90] for r in rows if r.strip()
    ]
    return page


def open_study_viewer(walk: Walk, page: Page, patient_id: str, study_id: int) -> int:
    """Open a study from the worklist with its lesion map on; returns the slice index
    the viewer shows (the most suspicious one: the viewer opens there)."""
    page.get_by_role("link", name=patient_id, exact=True).first.click()
    page.wait_for_url(f"**/studies/{study_id}/")
    viewer = page.locator("#viewer")
    viewer.wait_for()
    # The viewer draws the slice once its data block has arrived.
    page.wait_for_function(
        "() => { const v = document.getElementById('viewer'); "
        "return v.dataset.current && v.dataset.loaded !== '0'; }"
    )
    toggle = page.locator("#heatmap-toggle")
    if not toggle.is_checked():
        toggle.check()
    layer = page.get_by_test_id("overlay-toggle").inner_text().strip()
    if layer != "Lesion map":
        walk.summary[f"PROBLEM layer {patient_id}"] = f"the overlay is called {layer!r}"
    index = int(viewer.get_attribute("data-current"))
    start = int(viewer.get_attribute("data-start"))
    heat = page.locator("#heatmap-img")
    if heat.is_hidden():
        walk.summary[f"PROBLEM map {patient_id}"] = (
            f"no lesion map is shown on slice {index + 1}"
        )
    else:
        heat.evaluate(
            "img => img.complete || new Promise(r => img.addEventListener('load', r))"
        )
    page.wait_for_timeout(300)
    walk.summary[f"{patient_id} viewer"] = (
        f"opens on slice {start + 1}; label: "
        + page.locator("#slice-label").inner_text().strip()
    )
    return index


def step_bleed_study(walk: Walk, page: Page, records: dict) -> None:
    bleed = walk.args.bleed
    record = records["bleed"]
    index = open_study_viewer(walk, page, f"CTICH-{bleed}", record["id"])
    walk.shot(page, "radiologist-bleed-study-lesion-map")
    viewer_shot(walk, page, "bleed-viewer-close")
    texts = {
        key: page.get_by_test_id(key).inner_text().strip()
        for key in ("overlay-caption", "ai-looks-for", "ai-cannot-exclude")
        if page.get_by_test_id(key).count()
    }
    walk.summary["study page wording"] = texts

    # Which file the shown slice is: the accepted files in upload order.
    root = Path(walk.args.ct_ich)
    set_aside = set(
        page.locator("details code").all_inner_texts()
    )  # names of files set aside at upload, if any
    accepted = [f for f in patient_files(root, bleed) if f.name not in set_aside]
    name = accepted[index].name if index < len(accepted) else "?"
    labelled = bleed_slices(root, bleed)
    what = (
        ", ".join(labelled[name]) or "hemorrhage"
        if name in labelled
        else "NO hemorrhage in labels.csv"
    )
    walk.summary["bleed slice shown"] = f"slice {index + 1} = {bleed}/{name}: {what}"
    response = page.request.get(
        f"{walk.base}/studies/{record['id']}/slices/{index}/heatmap.png"
    )
    mask = root / "masks" / bleed / name
    if response.ok and mask.exists():
        walk.summary["lesion map vs mask"] = map_on_mask(response.body(), mask)

    # The same slice with the map off, for the reader's eye.
    page.locator("#heatmap-toggle").uncheck()
    page.wait_for_timeout(300)
    viewer_shot(walk, page, "bleed-viewer-map-off")
    page.locator("#heatmap-toggle").check()

    # The slice with the most hemorrhage in the radiologist's mask, through the strip.
    mapped = page.locator("#viewer").get_attribute("data-heatmaps") or ""
    walk.summary["slices with a lesion map"] = [
        int(i) + 1 for i in mapped.split(",") if i
    ]
    # Every other slice with a map: on the bleed, or on something else?
    for other in (int(i) for i in mapped.split(",") if i):
        if other == index or other >= len(accepted):
            continue
        page.locator(f'.prob-bar[data-index="{other}"]').click()
        page.wait_for_timeout(500)
        viewer_shot(walk, page, f"bleed-viewer-mapped-slice-{other + 1}")
        name = accepted[other].name
        response = page.request.get(
            f"{walk.base}/studies/{record['id']}/slices/{other}/heatmap.png"
        )
        if response.ok and (root / "masks" / bleed / name).exists():
            walk.summary[f"map on slice {other + 1} ({name})"] = (
                ", ".join(labelled.get(name, [])) or "no hemorrhage in labels.csv",
                map_on_mask(response.body(), root / "masks" / bleed / name),
            )
    largest = largest_bleed_slice(root, bleed, accepted)
    if largest is not None:
        bar = page.locator(f'.prob-bar[data-index="{largest}"]')
        bar.click()
        page.wait_for_timeout(500)
        viewer_shot(walk, page, "bleed-viewer-largest-bleed-slice")
        walk.summary["largest bleed slice"] = (
            f"slice {largest + 1} = {bleed}/{accepted[largest].name}, "
            f"{bar.get_attribute('aria-label')}, "
            + ("lesion map shown" if page.locator("#heatmap-img").is_visible()
               else "NO lesion map on this slice")
        )  # fmt: skip


def largest_bleed_slice(root: Path, patient: str, accepted: list[Path]) -> int | None:
    """Index (among the accepted slices) of the slice with the largest mask area."""
    import numpy as np
    from PIL import Image

    areas = [
        int((np.asarray(Image.open(root / "masks" / patient / f.name)) > 0).sum())
        if (root / "masks" / patient / f.name).exists() else 0
        for f in accepted
    ]  # fmt: skip
    return int(np.argmax(areas)) if any(areas) else None


def step_normal_study(walk: Walk, page: Page, records: dict) -> None:
    page.get_by_test_id("role-nav").get_by_role("link", name="Worklist").click()
    page.wait_for_url("**/studies/")
    open_study_viewer(walk, page, f"CTICH-{walk.args.normal}", records["normal"]["id"])
    walk.shot(page, "radiologist-normal-study")


def step_registry(walk: Walk) -> None:
    page = walk.as_user("demo-admin")
    page.goto(f"{walk.base}/feedback/models/")
    walk.shot(page, "admin-model-registry")
    active = page.locator("tr", has=page.locator(".badge", has_text="Active"))
    walk.summary["registry active row"] = " ".join(
        " ".join(active.all_inner_texts()).split()
    )[:200]
    if "lesion" not in walk.summary["registry active row"].lower():
        walk.summary["PROBLEM registry"] = "the active model is not the lesion model"
    link = active.first.get_by_role("link").first
    if link.count():
        link.click()
        page.wait_for_load_state()
        walk.shot(page, "admin-model-detail")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=not args.headed, args=CHROMIUM_ARGS
        )
        walk = Walk(args=args, browser=browser, passwords={})
        try:
            walk.passwords = read_credentials(Path(args.credentials))
            walk.step = "uploads"
            records = step_uploads(walk)
            walk.step = "worklist"
            page = step_worklist(walk)
            walk.step = "bleed study"
            step_bleed_study(walk, page, records)
            walk.step = "normal study"
            step_normal_study(walk, page, records)
            walk.step = "registry"
            step_registry(walk)
        except (StepFailed, PlaywrightTimeout) as exc:
            print(f"\nFAILED at step '{walk.step}': {exc}", file=sys.stderr)
            for page in walk.pages.values():
                walk.shot(page, f"failed-{walk.step.replace(' ', '-')}")
            return 1
        finally:
            browser.close()
    print("\nSummary")
    for key, value in walk.summary.items():
        print(f"  {key}: {value}")
    print("Screenshots:\n  " + "\n  ".join(str(s) for s in walk.shots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
