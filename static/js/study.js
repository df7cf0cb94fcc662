// Study page: live analysis progress (the viewer is static/js/viewer.js).
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
})();
