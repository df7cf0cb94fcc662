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

The study also has a second series of the same size kept for viewing only (the
series picker); in a fresh browser context at the laptop size the script measures:

- switch: from choosing the other series in the picker to its first slice drawn,
  and to all of its slices in memory; and back to the analysed series (in memory).

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
from diagnosis.models import (Series, SeriesStatus, Slice, Study, StudyStatus,
                              WorklistBucket)
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
other = make_phantom(label="normal", size={size}, slices={slices}, seed=5)
Series.objects.create(
    study=study, index=1, series_instance_uid="2.25.17", number=4,
    description="BENCH OTHER", slice_count={slices}, status=SeriesStatus.READY,
    dicom_metadata={{"pixel_spacing_mm": [0.5, 0.5], "slice_thickness_mm": 1.0,
                    "image_orientation": [1, 0, 0, 0, 1, 0]}},
)
np.save(storage.volume_path(study.pk, series=1), other.volume_hu.astype(np.float32))
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


SWITCH = """async () => {
  const v = document.getElementById('viewer');
  const picker = document.getElementById('series-picker');
  const n = %d;
  // Resolves when `done()` holds, checked on every change of the viewer's data-*.
  const until = (done) => new Promise((resolve) => {
    if (done()) return resolve(performance.now());
    const watch = new MutationObserver(() => {
      if (done()) { watch.disconnect(); resolve(performance.now()); }
    });
    watch.observe(v, { attributes: true });
  });
  const choose = (value) => {
    picker.value = value; picker.dispatchEvent(new Event('change'));
  };
  let t = performance.now();
  choose('1');
  const first = await until(() => (v.dataset.drawn || '').startsWith('1:'));
  const all = await until(
    () => v.dataset.series === '1' && v.dataset.loaded === String(n));
  const t2 = performance.now();
  choose('0');
  const back = await until(() => (v.dataset.drawn || '').startsWith('0:'));
  return {switch_first_slice_ms: first - t, switch_all_loaded_s: (all - t) / 1000,
          switch_back_ms: back - t2};
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with Portal(broker_db=11) as portal:
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
            results["series switch, laptop, fresh cache"] = measure_switch(
                browser, portal.base, study, *SCREENS["laptop 1366x768"], args
            )
            browser.close()
    print(json.dumps(results, indent=2))
    return 0


def signed_in_page(browser, base, width, height, errors: list[str]):
    """A page in a fresh browser context (empty cache), signed in."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(RADIOLOGIST)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return page


def measure_switch(browser, base, study, width, height, args) -> dict:
    errors: list[str] = []
    page = signed_in_page(browser, base, width, height, errors)
    page.goto(f"{base}/studies/{study}/")
    page.wait_for_function(
        f"() => document.getElementById('viewer').dataset.loaded === '{args.slices}'",
        timeout=300_000,
    )
    figures = page.evaluate(SWITCH % args.slices)
    shot = REPO / "test-artifacts" / "viewer-bench-series-switch.png"
    page.locator("#series-picker").select_option("1")
    page.screenshot(path=shot)
    page.context.close()
    if errors:
        raise RuntimeError(f"errors in the page: {errors}")
    return {
        "slices": args.slices,
        "size": args.size,
        **{k: round(v, 2) for k, v in figures.items()},
        "screenshot": str(shot.relative_to(REPO)),
    }


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
