// Charts of the feedback pages: a training chart that follows a running job, and
// figures the server built (json_script elements named by data-figure-id).
(function () {
  "use strict";
  const config = { displaylogo: false, responsive: true };

  function drawStatic() {
    document.querySelectorAll("[data-figure-id]").forEach((el) => {
      const source = document.getElementById(el.dataset.figureId);
      if (!source || !window.Plotly) return;
      const figure = JSON.parse(source.textContent);
      Plotly.react(el, figure.data, figure.layout, config);
    });
  }

  function trainingFigure(history) {
    const epochs = history.map((h) => h.epoch);
    return {
      data: [
        { x: epochs, y: history.map((h) => h.loss), name: "training loss", mode: "lines+markers" },
        { x: epochs, y: history.map((h) => h.val_auc), name: "validation AUC", mode: "lines+markers", yaxis: "y2" },
      ],
      layout: {
        height: 320,
        margin: { l: 50, r: 50, t: 20, b: 40 },
        xaxis: { title: { text: "epoch" }, dtick: 1 },
        yaxis: { title: { text: "loss" }, rangemode: "tozero" },
        yaxis2: { title: { text: "AUC" }, overlaying: "y", side: "right", range: [0, 1], tickmode: "linear", tick0: 0, dtick: 0.2 },
        legend: { orientation: "h", y: -0.25 },
      },
    };
  }

  function followJob() {
    const root = document.getElementById("job-root");
    const chart = document.getElementById("training-chart");
    if (!root || !chart) return;
    let lastEpochs = -1;
    function render(state) {
      const badge = document.getElementById("job-status");
      badge.textContent = state.status_display;
      badge.className = `badge text-bg-${state.badge}`;
      document.getElementById("job-note").textContent = state.note;
      document.getElementById("job-started").textContent = state.started;
      // A job that stopped early is done: its bar is full.
      const share = state.status === "succeeded" ? 1 : state.epoch / Math.max(1, state.epochs);
      const bar = document.getElementById("job-progress");
      bar.style.width = `${100 * share}%`;
      bar.classList.toggle("bg-success", state.status === "succeeded");
      bar.parentElement.setAttribute("aria-valuenow", String(state.epoch));
      const log = document.getElementById("job-log");
      if (log.textContent !== state.log) {
        log.textContent = state.log;
        log.scrollTop = log.scrollHeight;
      }
      const error = document.getElementById("job-error");
      error.textContent = state.error;
      error.classList.toggle("d-none", !state.error);
      if (state.history.length && state.history.length !== lastEpochs && window.Plotly) {
        document.getElementById("chart-waiting")?.remove();
        const figure = trainingFigure(state.history);
        Plotly.react(chart, figure.data, figure.layout, config);
        lastEpochs = state.history.length;
      }
    }
    const initial = JSON.parse(document.getElementById("job-initial").textContent);
    render(initial);
    if (initial.finished) return;
    const timer = setInterval(async () => {
      try {
        const response = await fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const state = await response.json();
        render(state);
        if (state.finished) {
          clearInterval(timer);
          window.location.reload(); // the candidate and its comparison appear
        }
      } catch (err) {
        /* the next tick tries again */
      }
    }, 2000);
  }

  function followDashboard() {
    const root = document.getElementById("dashboard-root");
    if (!root) return;
    setInterval(async () => {
      try {
        const response = await fetch(root.dataset.figuresUrl, { headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const payload = await response.json();
        for (const [key, value] of Object.entries(payload.figures)) {
          const el = document.querySelector(`[data-figure="${key}"]`);
          if (el) el.textContent = el.dataset.format === "percent" ? (value === null ? "—" : `${Math.round(value * 100)} %`) : (value === null ? "—" : value);
        }
        const chart = document.getElementById("studies-chart");
        if (chart && window.Plotly) Plotly.react(chart, payload.studies_chart.data, payload.studies_chart.layout, config);
      } catch (err) {
        /* try again on the next tick */
      }
    }, 30000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawStatic();
    followJob();
    followDashboard();
  });
})();
