"""How fast the study page's viewer loads and scrolls a thin-slice series in Debian's
Chromium (issue 17: >= 20 slices/s once loaded, 300 slices of 512 x 512).

A throw-away portal (bench/portal.py: gunicorn, PostgreSQL, a worker) gets a ready
study whose stored volume is a synthetic 300 x 512 x 512 head in HU; a radiologist
opens it at each screen size and the script measures:

- load: from opening the page to every slice in memory (int16 blocks of 16);
- scroll: slices shown per second when stepping through all of them, one per
  painted frame (requestAnimationFrame: the screen's rate caps it, 60/s here);
- draw: milliseconds the viewer's own work takes per slice (window the int16
  values, put them on the canvas), without waiting for a frame;
- window/level drag: redraws per second while the window changes every frame.

    .venv/bin/python bench/bench_viewer_scroll.py [--slices 300] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.portal import Portal  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SCREENS = {"laptop 1366x768": (1366, 768), "4K monitor 3840x2160": (3840, 2160)}
RADIOLOGIST, PASSWORD = "bench-radiologist", "bench-pass-12345"

SEED = """
import numpy as np
from django.utils import timezone
from accounts.models import User
from diagnosis import storage
from diagnosis.models import Slice, Study, StudyStatus, WorklistBucket
from ml.synthetic import make_phantom

u = User(username={user!r}, role="radiologist"); u.set_password({password!r}); u.save()
phantom = make_phantom(label="hemorrhagic", lesion="intraparenchymal",
                       size={size}, slices={slices}, seed=2)
now = timezone.now()
study = Study.objects.create(
    uploaded_by=u, status=StudyStatus.READY, bucket=WorklistBucket.TO_REVIEW,
    content_hash="b" * 64, source_kind="dicom", units="HU", modality="CT",
    slice_count={slices}, patient_id="BENCH-VIEWER", queued_at=now, ready_at=now,
    dicom_metadata={{"pixel_spacing_mm": [0.45, 0.45],
                    "image_orientation": [1, 0, 0, 0, 1, 0]}},
)
Slice.objects.bulk_create(
    [Slice(study=study, index=i, source_name=f"IM{{i:04d}}.dcm")
     for i in range({slices})]
)
storage.study_dir(study.pk).mkdir(parents=True, exist_ok=True)
np.save(storage.volume_path(study.pk), phantom.volume_hu.astype(np.float32))
print(study.pk)
"""

MEASURE = """async () => {
  const v = window.strokeViewer, n = %d;
  const frame = () => new Promise(requestAnimationFrame);
  v.goTo(0); await frame();
  let t = performance.now();
  for (let i = 0; i < n; i++) { v.goTo(i); await frame(); }
  const scroll = n / ((performance.now() - t) / 1000);
  t = performance.now();
  for (let i = 0; i < n; i++) v.goTo(i);
  const draw = (performance.now() - t) / n;
  const wc = document.getElementById('wc'), ww = document.getElementById('ww');
  const form = document.getElementById('manual-window');
  t = performance.now();
  for (let k = 0; k < 120; k++) {
    wc.value = 20 + k; ww.value = 60 + k; form.requestSubmit(); await frame();
  }
  const wl = 120 / ((performance.now() - t) / 1000);
  return {scroll_slices_per_s: scroll, draw_ms_per_slice: draw, wl_redraws_per_s: wl};
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with Portal() as portal:
        seed = SEED.format(
            user=RADIOLOGIST, password=PASSWORD, size=args.size, slices=args.slices
        )
        study = int(portal.shell(seed).strip().splitlines()[-1])
        results = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            for name, (width, height) in SCREENS.items():
                results[name] = measure(
                    browser, portal.base, study, width, height, args
                )
            browser.close()
    print(json.dumps(results, indent=2))
    return 0


def measure(browser, base, study, width, height, args) -> dict:
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(RADIOLOGIST)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    started = time.perf_counter()
    page.goto(f"{base}/studies/{study}/")
    try:
        page.wait_for_function(
            "() => document.getElementById('viewer').dataset.loaded === "
            f"'{args.slices}'",
            timeout=300_000,
        )
    except Exception:
        page.screenshot(path=REPO / "test-artifacts" / "viewer-bench-stuck.png")
        raise RuntimeError(f"the viewer did not load all slices: {errors}") from None
    loaded = time.perf_counter() - started
    figures = page.evaluate(MEASURE % args.slices)
    shot = REPO / "test-artifacts" / f"viewer-bench-{width}x{height}.png"
    shot.parent.mkdir(exist_ok=True)
    page.screenshot(path=shot)
    page.close()
    return {
        "slices": args.slices,
        "size": args.size,
        "load_s": round(loaded, 2),
        "load_mb": round(args.slices * args.size**2 * 2 / 1e6, 1),
        **{k: round(v, 1) for k, v in figures.items()},
        "screenshot": str(shot.relative_to(REPO)),
    }


if __name__ == "__main__":
    sys.exit(main())
