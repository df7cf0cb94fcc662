// Keeps the worklist current: asks every 10 s whether anything changed (no patient
// data in that answer), refreshes the count badges from that answer and reloads the
// rows only when something changed.
(function () {
  const rows = document.getElementById("study-rows");
  if (!rows) return;
  const badges = document.querySelectorAll("[data-count]");
  let version = null;
  function showCounts(counts) {
    if (!counts) return;
    for (const badge of badges) {
      const n = counts[badge.dataset.count];
      // A badge reads "<n> <what>": only the number changes.
      if (n !== undefined) badge.textContent = badge.textContent.replace(/^\d+/, n);
    }
  }
  async function check() {
    try {
      const pulse = await fetch(rows.dataset.pulseUrl, { credentials: "same-origin" });
      if (!pulse.ok) return;
      const body = await pulse.json();
      showCounts(body.counts);
      if (version !== null && body.version !== version) {
        const fresh = await fetch(rows.dataset.rowsUrl, { credentials: "same-origin" });
        if (fresh.ok) rows.innerHTML = await fresh.text();
      }
      version = body.version;
    } catch (err) { /* offline for a moment: try again at the next tick */ }
  }
  check();
  setInterval(check, 10000);
})();
