// Study page: live analysis progress, and the slice viewer.
(function () {
  // --- Live status: poll while the study is queued or processing ----------------
  const statusBox = document.getElementById("study-status");
  if (statusBox && ["queued", "processing"].includes(statusBox.dataset.status)) {
    const bar = statusBox.querySelector(".progress-bar");
    const timer = setInterval(async () => {
      try {
        const res = await fetch(statusBox.dataset.statusUrl, { credentials: "same-origin" });
        if (!res.ok) return;
        const s = await res.json();
        if (bar && s.total) {
          bar.style.width = Math.round((100 * s.done) / s.total) + "%";
          bar.textContent = `${s.done} / ${s.total} slices`;
        }
        const note = document.getElementById("progress-note");
        if (note && s.status === "processing") note.textContent = `Analysing: ${s.done} of ${s.total || "?"} slices`;
        if (s.status === "ready" || s.status === "failed") {
          clearInterval(timer);
          window.location.reload();
        }
      } catch (err) { /* try again at the next tick */ }
    }, 1500);
  }

  // --- Viewer ----------------------------------------------------------------------
  const viewer = document.getElementById("viewer");
  if (!viewer) return;
  const count = parseInt(viewer.dataset.count, 10);
  const heatSlices = new Set((viewer.dataset.heatmaps || "").split(",").filter(Boolean).map(Number));
  const layerName = viewer.dataset.layer || "heatmap"; // "lesion map" for a lesion-feature model
  const sliceUrl = (i) => viewer.dataset.sliceUrl.replace(/\/0\.png$/, `/${i}.png`);
  const heatUrl = (i) => viewer.dataset.heatmapUrl.replace(/\/0\/heatmap\.png$/, `/${i}/heatmap.png`);
  const img = document.getElementById("slice-img");
  const heat = document.getElementById("heatmap-img");
  const label = document.getElementById("slice-label");
  const slider = document.getElementById("slice-slider");
  const toggle = document.getElementById("heatmap-toggle");
  const opacity = document.getElementById("heatmap-opacity");
  const frame = viewer.querySelector(".viewer-frame");
  const stage = viewer.querySelector(".viewer-stage");
  const bars = Array.from(document.querySelectorAll(".prob-bar"));
  let index = Math.min(Math.max(parseInt(viewer.dataset.start, 10) || 0, 0), count - 1);
  let windowQuery = "window=brain";
  let zoom = 1;

  function render() {
    img.src = `${sliceUrl(index)}?${windowQuery}`;
    const showHeat = toggle.checked && heatSlices.has(index);
    heat.classList.toggle("d-none", !showHeat);
    if (showHeat) heat.src = heatUrl(index);
    heat.style.opacity = opacity.value / 100;
    slider.value = index;
    const bar = bars[index];
    bars.forEach((b) => b.classList.remove("current"));
    if (bar) bar.classList.add("current");
    label.textContent = `Slice ${index + 1} / ${count}` + (bar ? ` · AI ${bar.title.split(": ")[1]}` : "") + (heatSlices.has(index) ? ` · ${layerName}` : "");
    viewer.dataset.current = index;
  }
  function go(next) { index = Math.min(Math.max(next, 0), count - 1); render(); }

  stage.addEventListener("wheel", (e) => { e.preventDefault(); go(index + (e.deltaY > 0 ? 1 : -1)); }, { passive: false });
  stage.addEventListener("keydown", (e) => {
    const moves = { ArrowUp: -1, ArrowLeft: -1, ArrowDown: 1, ArrowRight: 1, PageUp: -5, PageDown: 5 };
    if (e.key in moves) { e.preventDefault(); go(index + moves[e.key]); }
    if (e.key === "Home") { e.preventDefault(); go(0); }
    if (e.key === "End") { e.preventDefault(); go(count - 1); }
    if (e.key === "h") { toggle.checked = !toggle.checked; render(); }
  });
  slider.addEventListener("input", () => go(parseInt(slider.value, 10)));
  bars.forEach((b) => b.addEventListener("click", () => go(parseInt(b.dataset.index, 10))));
  toggle.addEventListener("change", render);
  opacity.addEventListener("input", () => { heat.style.opacity = opacity.value / 100; });
  viewer.querySelectorAll("[data-window]").forEach((btn) => btn.addEventListener("click", () => {
    viewer.querySelectorAll("[data-window]").forEach((b) => b.classList.remove("active"));
    btn.classList.add("active");
    windowQuery = `window=${btn.dataset.window}`;
    render();
  }));
  const manual = document.getElementById("manual-window");
  if (manual) manual.addEventListener("submit", (e) => {
    e.preventDefault();
    viewer.querySelectorAll("[data-window]").forEach((b) => b.classList.remove("active"));
    windowQuery = `window=custom&c=${encodeURIComponent(document.getElementById("wc").value)}&w=${encodeURIComponent(document.getElementById("ww").value)}`;
    render();
  });
  viewer.querySelectorAll("[data-zoom]").forEach((btn) => btn.addEventListener("click", () => {
    const step = parseInt(btn.dataset.zoom, 10);
    zoom = step === 0 ? 1 : Math.min(Math.max(zoom * (step > 0 ? 1.25 : 0.8), 0.5), 6);
    frame.style.transform = `scale(${zoom})`;
  }));
  render();
})();
