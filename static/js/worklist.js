// Keeps the worklist current: asks every 10 s whether anything changed (no patient
// data in that answer) and reloads the rows only then.
(function () {
  const rows = document.getElementById("study-rows");
  if (!rows) return;
  let version = null;
  async function check() {
    try {
      const pulse = await fetch(rows.dataset.pulseUrl, { credentials: "same-origin" });
      if (!pulse.ok) return;
      const body = await pulse.json();
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
