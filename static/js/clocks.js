// Keeps the stroke team's clocks (time since the scan, since symptom onset) running
// between reloads of the worklist rows or the study page: every 20 s each clock is
// worded again from its data-since time, as diagnosis/templatetags/studies.py words it.
(function () {
  function ago(ms) {
    if (ms < 60000) return ms > -60000 ? "just now" : "in the future";
    const minutes = Math.floor(ms / 60000);
    if (minutes < 60) return minutes + " min ago";
    if (minutes < 48 * 60) {
      return Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " min ago";
    }
    return Math.floor(minutes / 1440) + " days ago";
  }
  function tick() {
    document.querySelectorAll("[data-clock][data-since][data-word]").forEach(function (el) {
      const since = Date.parse(el.dataset.since);
      if (!Number.isNaN(since)) el.textContent = el.dataset.word + " " + ago(Date.now() - since);
    });
  }
  setInterval(tick, 20000);
})();
