// The study page's slice viewer, drawn in the browser from the slices' values.
//
// The server sends each slice once as int16 (Hounsfield units for CT; see
// diagnosis/viewer.py) and the page windows it here, so window/level follows the
// mouse without a round trip. The slice is drawn at its own resolution on a canvas
// inside a "frame" that CSS moves and scales (pan, zoom); the AI's outline or
// heatmap is an <img> in the same frame, so it stays on the pixels it was made for.
// Measurements are drawn on a second canvas the size of the stage, in screen
// pixels, so lines stay sharp at any zoom.
//
// Written by hand rather than with cornerstone3D: the portal's Content-Security-
// Policy forbids eval and WebAssembly that its image loaders need, non-DICOM
// studies (PNG, NIfTI) have no DICOM files for its loaders, and the slices are
// already decoded to HU by the server; see the closing note of issue 17.
//
// A study may have several series (meta.series: the analysed one first, then
// series kept for viewing only). Each has its own size, spacing, orientation and
// slices; switching keeps the window, resets zoom and pan, and the AI's overlay,
// probabilities and "next suspicious" belong to the analysed series only.
(function () {
  "use strict";
  const viewer = document.getElementById("viewer");
  const metaScript = document.getElementById("viewer-meta");
  if (!viewer || !metaScript) return;
  const meta = JSON.parse(metaScript.textContent);
  const isHU = meta.units === "HU";
  const unit = isHU ? "HU" : "";
  const overlays = new Set(meta.overlays);
  const probs = meta.probabilities;
  const allSeries = meta.series && meta.series.length ? meta.series : [{
    index: 0, analysed: true, label: "", shape: meta.shape, encoding: meta.encoding,
    spacing: meta.spacing, orientation: meta.orientation, window: meta.window,
    dataUrl: `${meta.dataUrl}?series=0`,
  }];
  // The series shown, and its geometry: set by useSeries().
  let series = allSeries[0];
  let count, rows, cols, spacing, encoding, slices, image, pixels32;

  const $ = (sel) => viewer.querySelector(sel);
  const stage = $(".viewer-stage");
  const frame = $(".viewer-frame");
  const canvas = $("#slice-canvas");
  const ctx = canvas.getContext("2d");
  const heat = $("#heatmap-img");
  const marks = $("#annotation-canvas");
  const mctx = marks.getContext("2d");
  const label = $("#slice-label");
  const wlBox = $("#wl-readout");
  const probeBox = $("#probe-readout");
  const scaleBar = $("#scale-bar");
  const loading = $("#viewer-loading");
  const slider = document.getElementById("slice-slider");
  const toggle = document.getElementById("heatmap-toggle");
  const opacity = document.getElementById("heatmap-opacity");
  const wcInput = document.getElementById("wc");
  const wwInput = document.getElementById("ww");
  const bars = Array.from(document.querySelectorAll(".prob-bar"));
  const list = document.getElementById("measurement-list");
  const field = document.querySelector("input[name=measurements]");
  const picker = document.getElementById("series-picker");
  const aiNote = document.getElementById("ai-note");
  const strip = document.getElementById("prob-strip");
  const nextButton = viewer.querySelector("[data-action=next]"); // only with an AI result

  const state = {
    index: Math.min(Math.max(meta.start || 0, 0), meta.shape[0] - 1),
    centre: meta.window[0],
    width: meta.window[1],
    invert: false,
    zoom: 1, // on top of the fit
    panX: 0,
    panY: 0,
    tool: "window",
    cine: null,
    fps: 10,
    measurements: [],
    drawing: null,
  };
  state.measurements = (meta.measurements || []).map((m) => Object.assign({ series: 0 }, m));
  // Per series: its slices (Int16Array each, once loaded), the blocks being
  // fetched, and the slice it was left on.
  const loaded = new Map(allSeries.map((s) => [s.index, { slices: new Array(s.shape[0]), pending: new Set(), at: null }]));
  let loadRun = 0; // a new run stops the previous series' loading loop

  // The slice of `to` at the level of slice `index` of `from` (the nearest by
  // position), or null when a series does not know its positions. `left`, where
  // the reader left `to`, wins when it is within half a slice of that level, so a
  // round trip through a thicker series comes back to the same slice.
  function nearestLevel(from, index, to, left) {
    if (!from || !from.positions || !to.positions) return null;
    const here = from.positions[index];
    if (here === undefined) return null;
    const step = (s) => (s.positions.length > 1 ? Math.abs(s.positions[1] - s.positions[0]) : 0);
    if (left !== null && Math.abs(to.positions[left] - here) <= Math.max(step(from), step(to)) / 2) {
      return left;
    }
    let best = null;
    to.positions.forEach((p, k) => {
      if (best === null || Math.abs(p - here) < Math.abs(to.positions[best] - here)) best = k;
    });
    return best;
  }

  function useSeries(next) {
    const previous = series;
    const fraction = count > 1 ? state.index / (count - 1) : 0;
    if (count !== undefined) loaded.get(previous.index).at = state.index;
    series = next;
    [count, rows, cols] = series.shape;
    spacing = series.spacing; // [row mm, column mm] or null
    encoding = series.encoding;
    slices = loaded.get(series.index).slices;
    canvas.width = cols;
    canvas.height = rows;
    frame.style.width = `${cols}px`;
    frame.style.height = `${rows}px`;
    image = ctx.createImageData(cols, rows);
    pixels32 = new Uint32Array(image.data.buffer);
    slider.max = String(count - 1);
    // The level the reader was looking at, when both series know their slices'
    // positions (PACS viewers link series so); else where it was left, else the
    // same height in the stack (both run foot to head).
    const at = loaded.get(series.index).at;
    const level = previous !== series ? nearestLevel(previous, state.index, series, at) : null;
    if (previous !== series) {
      state.index = level !== null ? level : at !== null ? at : Math.round(fraction * (count - 1));
    }
    state.index = Math.min(Math.max(state.index, 0), count - 1);
    state.zoom = 1; state.panX = 0; state.panY = 0; // the window stays
    for (const edge of ["left", "right", "top", "bottom"]) {
      const el = $(`.viewer-edge.${edge}`);
      el.textContent = series.orientation ? series.orientation[edge] : "";
      el.classList.toggle("d-none", !series.orientation);
    }
    if (picker) picker.value = String(series.index);
    if (aiNote) aiNote.classList.toggle("d-none", series.analysed);
    if (strip) strip.classList.toggle("other-series", !series.analysed);
    // The AI's controls do nothing on another series: disabled, not hidden.
    for (const control of [nextButton, toggle, opacity]) if (control) control.disabled = !series.analysed;
    viewer.dataset.series = String(series.index);
  }
  function setSeries(index) {
    const next = allSeries.find((s) => s.index === index);
    if (!next || next === series) return;
    cine(false);
    state.drawing = null;
    useSeries(next);
    updateLoading();
    render();
    loadAll();
  }
  function stepSeries(step) {
    const k = allSeries.indexOf(series);
    setSeries(allSeries[(k + step + allSeries.length) % allSeries.length].index);
  }

  // --- Geometry ----------------------------------------------------------------
  function fit() {
    const r = stage.getBoundingClientRect();
    return Math.min(r.width / cols, r.height / rows);
  }
  function scale() { return fit() * state.zoom; }
  function origin() {
    const r = stage.getBoundingClientRect();
    const s = scale();
    return [(r.width - cols * s) / 2 + state.panX, (r.height - rows * s) / 2 + state.panY];
  }
  // Stage pixels (from the event) to image pixels, and back.
  function toImage(clientX, clientY) {
    const r = stage.getBoundingClientRect();
    const [ox, oy] = origin();
    const s = scale();
    return [(clientX - r.left - ox) / s, (clientY - r.top - oy) / s];
  }
  function toStage(x, y) {
    const [ox, oy] = origin();
    const s = scale();
    return [ox + x * s, oy + y * s];
  }
  function value(slice, x, y) {
    const xi = Math.floor(x), yi = Math.floor(y);
    if (!slice || xi < 0 || yi < 0 || xi >= cols || yi >= rows) return null;
    return slice[yi * cols + xi] * encoding.scale + encoding.offset;
  }
  function mm(dx, dy) {
    if (!spacing) return null;
    return Math.hypot(dx * spacing[1], dy * spacing[0]);
  }

  // --- Loading ------------------------------------------------------------------
  async function fetchBlock(target, first) {
    const store = loaded.get(target.index);
    if (store.pending.has(first) || store.slices[first]) return;
    store.pending.add(first);
    try {
      const res = await fetch(`${target.dataUrl}&start=${first}&count=${meta.block}`, { credentials: "same-origin" });
      if (!res.ok) throw new Error(`slices ${first + 1}+: ${res.status}`);
      const buffer = await res.arrayBuffer();
      const n = parseInt(res.headers.get("X-Slice-Count"), 10);
      const size = target.shape[1] * target.shape[2];
      for (let k = 0; k < n; k++) store.slices[first + k] = new Int16Array(buffer, k * size * 2, size);
      if (target !== series) return; // the reader moved on to another series
      if (first <= state.index && state.index < first + n) render();
      updateLoading();
    } catch (err) {
      loading.textContent = "Some slices could not be loaded; reload the page to try again.";
      loading.classList.remove("d-none");
    } finally {
      store.pending.delete(first);
    }
  }
  // The block with the current slice first, then outwards from it; a switch to
  // another series stops this loop and starts one for that series.
  async function loadAll() {
    const run = ++loadRun, target = series;
    const blocks = [];
    for (let b = 0; b < count; b += meta.block) blocks.push(b);
    const here = Math.floor(state.index / meta.block) * meta.block;
    blocks.sort((a, b) => Math.abs(a - here) - Math.abs(b - here));
    for (const b of blocks) {
      if (run !== loadRun) return;
      await fetchBlock(target, b);
    }
  }
  function updateLoading() {
    const have = slices.filter(Boolean).length;
    viewer.dataset.loaded = String(have);
    loading.classList.toggle("d-none", have === count);
    loading.textContent = `Loading slices: ${have} / ${count}`;
  }

  // --- Drawing ------------------------------------------------------------------
  let lut = null, lutKey = "";
  function buildLut() {
    // int16 stored value -> grey level, for the current window; 65,536 entries.
    const key = `${state.centre}|${state.width}|${state.invert}|${encoding.scale}|${encoding.offset}`;
    if (key === lutKey) return;
    lutKey = key;
    lut = new Uint32Array(65536);
    const low = state.centre - state.width / 2;
    const { scale: k, offset } = encoding;
    for (let s = -32768; s < 32768; s++) {
      let g = ((s * k + offset - low) / state.width) * 255;
      g = g < 0 ? 0 : g > 255 ? 255 : Math.round(g);
      if (state.invert) g = 255 - g;
      lut[s + 32768] = 0xff000000 | (g << 16) | (g << 8) | g;
    }
  }
  function drawSlice() {
    const slice = slices[state.index];
    if (!slice) {
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, cols, rows);
      return false;
    }
    buildLut();
    for (let i = 0; i < slice.length; i++) pixels32[i] = lut[slice[i] + 32768];
    ctx.putImageData(image, 0, 0);
    viewer.dataset.drawn = `${series.index}:${state.index}`;
    return true;
  }
  function placeFrame() {
    const [ox, oy] = origin();
    frame.style.transform = `translate(${ox}px, ${oy}px) scale(${scale()})`;
    const r = stage.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    if (marks.width !== Math.round(r.width * ratio) || marks.height !== Math.round(r.height * ratio)) {
      marks.width = Math.round(r.width * ratio);
      marks.height = Math.round(r.height * ratio);
      marks.style.width = `${r.width}px`;
      marks.style.height = `${r.height}px`;
    }
    mctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    drawScaleBar();
  }
  function drawScaleBar() {
    if (!spacing) { scaleBar.classList.add("d-none"); return; }
    const pxPerMm = scale() / spacing[1];
    const lengths = [1, 2, 5, 10, 20, 50, 100, 200];
    const mmLength = lengths.find((l) => l * pxPerMm >= 60) || 200;
    scaleBar.querySelector(".bar").style.width = `${mmLength * pxPerMm}px`;
    scaleBar.querySelector(".text").textContent = mmLength >= 10 ? `${mmLength / 10} cm` : `${mmLength} mm`;
  }
  function render() {
    const drawn = drawSlice();
    const ai = series.analysed; // the AI's results are on the analysed series only
    const showHeat = ai && toggle && toggle.checked && overlays.has(state.index);
    heat.classList.toggle("d-none", !showHeat);
    if (showHeat) {
      const src = meta.overlayUrl.replace(/\/0\/heatmap\.png$/, `/${state.index}/heatmap.png`);
      if (heat.getAttribute("src") !== src) heat.src = src;
    }
    heat.style.opacity = opacity ? opacity.value / 100 : 0.5;
    placeFrame();
    drawMarks();
    slider.value = state.index;
    bars.forEach((b, i) => b.classList.toggle("current", ai && i === state.index));
    const p = probs[state.index];
    const aiWords = !ai ? "" :
      (p === null || p === undefined ? (meta.threshold !== null ? " · not read by the AI" : "") : ` · AI ${Math.round(p * 100)}%`) +
      (overlays.has(state.index) ? ` · ${viewer.dataset.layer}` : "");
    label.textContent = (allSeries.length > 1 ? `Series ${series.label} · ` : "") +
      `Slice ${state.index + 1} / ${count}` + aiWords + (drawn ? "" : " · loading");
    wlBox.textContent = `C ${Math.round(state.centre)} / W ${Math.round(state.width)}${unit ? " " + unit : ""} · ${Math.round(scale() * 100)}%${state.invert ? " · inverted" : ""}`;
    if (document.activeElement !== wcInput) wcInput.value = Math.round(state.centre);
    if (document.activeElement !== wwInput) wwInput.value = Math.round(state.width);
    viewer.dataset.current = String(state.index);
    viewer.dataset.window = `${state.centre},${state.width}`;
  }

  // --- Measurements ---------------------------------------------------------------
  function ellipseStats(m) {
    const slice = loaded.get(m.series).slices[m.slice];
    const [[x1, y1], [x2, y2]] = m.points;
    const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
    const rx = Math.abs(x2 - x1) / 2, ry = Math.abs(y2 - y1) / 2;
    let n = 0, sum = 0, sq = 0;
    for (let y = Math.floor(cy - ry); y <= Math.ceil(cy + ry); y++) {
      for (let x = Math.floor(cx - rx); x <= Math.ceil(cx + rx); x++) {
        const dx = (x + 0.5 - cx) / (rx || 1), dy = (y + 0.5 - cy) / (ry || 1);
        if (dx * dx + dy * dy > 1) continue;
        const v = value(slice, x, y);
        if (v === null) continue;
        n++; sum += v; sq += v * v;
      }
    }
    const mean = n ? sum / n : null;
    m.mean = mean === null ? null : +mean.toFixed(1);
    m.sd = n > 1 ? +Math.sqrt(Math.max(sq / n - mean * mean, 0)).toFixed(1) : null;
    m.pixels = n;
    m.area_mm2 = spacing ? +(Math.PI * rx * spacing[1] * ry * spacing[0]).toFixed(1) : null;
  }
  function describe(m) {
    if (m.kind === "length") return m.mm !== null ? `${m.mm.toFixed(1)} mm` : `${m.px.toFixed(1)} px (no pixel spacing)`;
    if (m.kind === "probe") return `${m.value === null ? "—" : Math.round(m.value)} ${unit}`.trim();
    const area = m.area_mm2 !== null ? `${m.area_mm2.toFixed(1)} mm²` : `${m.pixels} px`;
    return `${area}, mean ${m.mean === null ? "—" : m.mean.toFixed(1)}${m.sd !== null ? ` ± ${m.sd.toFixed(1)}` : ""} ${unit}`.trim();
  }
  function finish(m) {
    const [[x1, y1], [x2, y2]] = m.points;
    if (m.kind === "length") {
      m.px = Math.hypot(x2 - x1, y2 - y1);
      const d = mm(x2 - x1, y2 - y1);
      m.mm = d === null ? null : +d.toFixed(2);
    } else if (m.kind === "ellipse") {
      ellipseStats(m);
    } else if (m.kind === "probe") {
      const v = value(loaded.get(m.series).slices[m.slice], x1, y1);
      m.value = v === null ? null : +v.toFixed(1);
    }
    m.text = describe(m);
  }
  function drawMarks() {
    const r = stage.getBoundingClientRect();
    mctx.clearRect(0, 0, r.width, r.height);
    const shown = state.measurements.filter((m) => m.series === series.index && m.slice === state.index);
    if (state.drawing) shown.push(state.drawing);
    mctx.lineWidth = 1.5;
    mctx.font = "12px system-ui, sans-serif";
    for (const m of shown) {
      mctx.strokeStyle = mctx.fillStyle = "#3cf";
      const [a, b] = m.points.map(([x, y]) => toStage(x, y));
      mctx.beginPath();
      if (m.kind === "length") {
        mctx.moveTo(a[0], a[1]);
        mctx.lineTo(b[0], b[1]);
      } else if (m.kind === "ellipse") {
        mctx.ellipse((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, Math.abs(b[0] - a[0]) / 2, Math.abs(b[1] - a[1]) / 2, 0, 0, 2 * Math.PI);
      } else {
        mctx.arc(a[0], a[1], 3, 0, 2 * Math.PI);
      }
      mctx.stroke();
      if (m.text) {
        mctx.fillStyle = "rgba(0,0,0,.6)";
        const w = mctx.measureText(m.text).width;
        mctx.fillRect(b[0] + 6, b[1] - 14, w + 6, 17);
        mctx.fillStyle = "#3cf";
        mctx.fillText(m.text, b[0] + 9, b[1]);
      }
    }
  }
  function saveMeasurements() {
    const kept = state.measurements.map(({ kind, series: s, slice, points, mm: d, area_mm2, mean, sd, value: v, text }) =>
      ({ kind, series: s, slice, points: points.map((p) => p.map((c) => +c.toFixed(1))), mm: d, area_mm2, mean, sd, value: v, text }));
    if (field) field.value = JSON.stringify(kept);
    list.innerHTML = "";
    state.measurements.forEach((m, i) => {
      const li = document.createElement("li");
      const go = document.createElement("button");
      go.type = "button";
      go.className = "btn btn-link btn-sm p-0";
      const where = allSeries.length > 1 ? `Series ${seriesLabel(m.series)}, slice` : "Slice";
      go.textContent = `${where} ${m.slice + 1}: ${m.kind === "probe" ? "probe" : m.kind} ${m.text}`;
      go.addEventListener("click", () => { setSeries(m.series); goTo(m.slice); });
      const del = document.createElement("button");
      del.type = "button";
      del.className = "btn btn-link btn-sm p-0 ms-2 text-danger";
      del.textContent = "remove";
      del.setAttribute("aria-label", `Remove measurement ${i + 1}`);
      del.addEventListener("click", () => { state.measurements.splice(i, 1); saveMeasurements(); render(); });
      li.append(go, del);
      list.append(li);
    });
    list.closest("[data-measurements]").classList.toggle("d-none", state.measurements.length === 0);
  }

  function seriesLabel(index) {
    const found = allSeries.find((s) => s.index === index);
    return found ? found.label : String(index);
  }

  // --- Actions ----------------------------------------------------------------------
  function goTo(next) {
    state.index = Math.min(Math.max(next, 0), count - 1);
    render();
  }
  function setWindow(centre, width, preset) {
    state.centre = centre;
    state.width = Math.max(1, width);
    viewer.querySelectorAll("[data-window]").forEach((b) => b.classList.toggle("active", b.dataset.window === preset));
    render();
  }
  function setTool(tool) {
    state.tool = tool;
    viewer.querySelectorAll("[data-tool]").forEach((b) => {
      b.classList.toggle("active", b.dataset.tool === tool);
      b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
    });
    stage.dataset.tool = tool;
  }
  function reset() {
    state.zoom = 1; state.panX = 0; state.panY = 0; state.invert = false;
    setWindow(series.window[0], series.window[1], viewer.dataset.defaultWindow);
  }
  function zoomAt(factor, clientX, clientY) {
    const before = toImage(clientX, clientY);
    state.zoom = Math.min(Math.max(state.zoom * factor, 0.25), 16);
    const [sx, sy] = toStage(before[0], before[1]);
    const r = stage.getBoundingClientRect();
    state.panX += clientX - r.left - sx;
    state.panY += clientY - r.top - sy;
    render();
  }
  function nextSuspicious(step) {
    if (!series.analysed) return; // the AI read the analysed series only
    const marked = (i) => overlays.has(i) || (probs[i] !== null && meta.threshold !== null && probs[i] >= meta.threshold);
    for (let k = 1; k < count; k++) {
      const i = (state.index + step * k + count) % count;
      if (marked(i)) { goTo(i); return; }
    }
  }
  function cine(on) {
    if (state.cine) { clearInterval(state.cine); state.cine = null; }
    if (on) state.cine = setInterval(() => goTo((state.index + 1) % count), 1000 / state.fps);
    const btn = viewer.querySelector("[data-action=cine]");
    btn.classList.toggle("active", !!state.cine);
    btn.setAttribute("aria-pressed", String(!!state.cine));
    viewer.dataset.cine = state.cine ? "playing" : "stopped";
  }

  // --- Mouse --------------------------------------------------------------------------
  let drag = null;
  stage.addEventListener("contextmenu", (e) => e.preventDefault());
  stage.addEventListener("pointerdown", (e) => {
    stage.focus({ preventScroll: true });
    let tool = state.tool;
    if (e.button === 1 || (e.button === 0 && e.shiftKey)) tool = "pan";
    else if (e.button === 2) tool = "zoom";
    drag = { tool, x: e.clientX, y: e.clientY, centre: state.centre, width: state.width, panX: state.panX, panY: state.panY, zoom: state.zoom };
    if (["length", "ellipse", "probe"].includes(tool)) {
      const p = toImage(e.clientX, e.clientY);
      state.drawing = { kind: tool, series: series.index, slice: state.index, points: [p, p.slice()] };
      if (tool === "probe") finish(state.drawing);
    }
    stage.setPointerCapture(e.pointerId);
    e.preventDefault();
  });
  stage.addEventListener("pointermove", (e) => {
    const [x, y] = toImage(e.clientX, e.clientY);
    const v = value(slices[state.index], x, y);
    probeBox.textContent = v === null ? "" : `(${Math.floor(x)}, ${Math.floor(y)}) ${isHU ? Math.round(v) : v.toFixed(1)}${unit ? " " + unit : ""}`;
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (drag.tool === "window") {
      // One screen pixel moves the window by about 1/250 of its width (at least 1).
      const step = Math.max(1, drag.width / 250);
      setWindow(drag.centre + dy * step, Math.max(1, drag.width + dx * step), null);
    } else if (drag.tool === "pan") {
      state.panX = drag.panX + dx; state.panY = drag.panY + dy; render();
    } else if (drag.tool === "zoom") {
      const r = stage.getBoundingClientRect();
      state.zoom = drag.zoom; state.panX = drag.panX; state.panY = drag.panY;
      zoomAt(Math.exp(-dy / 150), drag.x, drag.y);
      void r;
    } else if (state.drawing) {
      state.drawing.points[state.drawing.kind === "probe" ? 0 : 1] = [x, y];
      finish(state.drawing);
      drawMarks();
    }
  });
  stage.addEventListener("pointerup", () => {
    if (state.drawing) {
      const m = state.drawing;
      state.drawing = null;
      const [[x1, y1], [x2, y2]] = m.points;
      if (m.kind === "probe" || Math.hypot(x2 - x1, y2 - y1) >= 2) {
        finish(m);
        state.measurements.push(m);
        saveMeasurements();
      }
      drawMarks();
    }
    drag = null;
  });
  stage.addEventListener("wheel", (e) => {
    e.preventDefault();
    if (e.ctrlKey || e.metaKey) zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX, e.clientY);
    else goTo(state.index + (e.deltaY > 0 ? 1 : -1));
  }, { passive: false });

  // --- Keyboard -----------------------------------------------------------------------
  const help = document.getElementById("viewer-help");
  const tools = { w: "window", p: "pan", z: "zoom", u: "probe", l: "length", e: "ellipse" };
  const presetKeys = Array.from(viewer.querySelectorAll("[data-window]"));
  stage.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const moves = { ArrowUp: -1, ArrowLeft: -1, ArrowDown: 1, ArrowRight: 1, PageUp: -10, PageDown: 10 };
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    let used = true;
    if (e.key in moves) goTo(state.index + moves[e.key]);
    else if (key === "Home") goTo(0);
    else if (key === "End") goTo(count - 1);
    else if (key in tools) setTool(tools[key]);
    else if (key === "i") { state.invert = !state.invert; render(); }
    else if (key === "r") reset();
    else if (key === "o" || key === "h") { if (toggle) { toggle.checked = !toggle.checked; render(); } }
    else if (key === "n") nextSuspicious(e.shiftKey ? -1 : 1);
    else if (key === "s" && allSeries.length > 1) stepSeries(e.shiftKey ? -1 : 1);
    else if (key === "c" || key === " ") cine(!state.cine);
    else if (key === "?" || key === "/") help.showModal();
    else if (key === "Delete" || key === "Backspace") { state.measurements.pop(); saveMeasurements(); render(); }
    else if (key === "Escape") { state.drawing = null; cine(false); drawMarks(); }
    else if (/^[1-9]$/.test(key) && presetKeys[+key - 1]) presetKeys[+key - 1].click();
    else used = false;
    if (used) e.preventDefault();
  });

  // --- Controls -------------------------------------------------------------------------
  viewer.querySelectorAll("[data-window]").forEach((btn) => btn.addEventListener("click", () => {
    const [c, w] = meta.windows[btn.dataset.window] || meta.window;
    setWindow(c, w, btn.dataset.window);
  }));
  document.getElementById("manual-window").addEventListener("submit", (e) => {
    e.preventDefault();
    const c = parseFloat(wcInput.value), w = parseFloat(wwInput.value);
    if (Number.isFinite(c) && Number.isFinite(w) && w >= 1) setWindow(c, w, null);
  });
  viewer.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  viewer.querySelector("[data-action=reset]").addEventListener("click", reset);
  viewer.querySelector("[data-action=invert]").addEventListener("click", () => { state.invert = !state.invert; render(); });
  viewer.querySelector("[data-action=cine]").addEventListener("click", () => cine(!state.cine));
  if (nextButton) nextButton.addEventListener("click", () => nextSuspicious(1));
  if (picker) picker.addEventListener("change", () => setSeries(parseInt(picker.value, 10)));
  viewer.querySelector("[data-action=help]").addEventListener("click", () => help.showModal());
  const fps = document.getElementById("cine-fps");
  fps.addEventListener("change", () => { state.fps = parseInt(fps.value, 10) || 10; if (state.cine) cine(true); });
  slider.addEventListener("input", () => goTo(parseInt(slider.value, 10)));
  // A bar is a slice of the analysed series: clicking one opens that series there.
  bars.forEach((b) => b.addEventListener("click", () => { setSeries(0); goTo(parseInt(b.dataset.index, 10)); }));
  if (toggle) toggle.addEventListener("change", render);
  if (opacity) opacity.addEventListener("input", () => { heat.style.opacity = opacity.value / 100; });
  window.addEventListener("resize", render);
  const form = document.querySelector("[data-testid=review-form]");
  if (form && field) form.addEventListener("submit", saveMeasurements);

  // For tests and benches: image pixels to page pixels, and the slices in memory.
  window.strokeViewer = {
    toPage(x, y) {
      const r = stage.getBoundingClientRect();
      const [sx, sy] = toStage(x, y);
      return [r.left + sx, r.top + sy];
    },
    loaded: () => slices.filter(Boolean).length,
    goTo,
    setSeries,
  };

  // Orientation markers and the scale bar come from each series' own geometry.
  useSeries(series);
  state.measurements.forEach((m) => { m.text = describe(m); });
  saveMeasurements();
  setTool("window");
  updateLoading();
  render();
  loadAll();
})();
