// Upload with drag and drop, folders and a progress bar. Without JavaScript the
// form still posts normally.
(function () {
  const form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;
  const filesInput = document.getElementById("id_files");
  const folderInput = document.getElementById("folder-input");
  const zone = document.getElementById("drop-zone");
  const summary = document.getElementById("file-summary");
  const bar = document.getElementById("upload-progress");
  const out = document.getElementById("upload-messages");
  let chosen = [];

  function show(files) {
    chosen = Array.from(files);
    const mb = chosen.reduce((s, f) => s + f.size, 0) / 1048576;
    summary.textContent = chosen.length ? `${chosen.length} file(s), ${mb.toFixed(1)} MB` : "No files chosen.";
  }
  filesInput.addEventListener("change", () => show(filesInput.files));
  folderInput.addEventListener("change", () => show(folderInput.files));

  async function entriesToFiles(items) {
    const files = [];
    async function walk(entry) {
      if (entry.isFile) {
        files.push(await new Promise((ok, ko) => entry.file(ok, ko)));
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        let batch;
        do {
          batch = await new Promise((ok, ko) => reader.readEntries(ok, ko));
          for (const child of batch) await walk(child);
        } while (batch.length);
      }
    }
    for (const item of items) {
      const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
      if (entry) await walk(entry);
    }
    return files;
  }
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => {
    e.preventDefault(); zone.classList.add("border-primary");
  }));
  zone.addEventListener("dragleave", () => zone.classList.remove("border-primary"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault(); zone.classList.remove("border-primary");
    show(await entriesToFiles(Array.from(e.dataTransfer.items)));
  });

  function escape(text) {
    const div = document.createElement("div"); div.textContent = text; return div.innerHTML;
  }
  function report(kind, html) {
    out.innerHTML = `<div class="alert alert-${kind}" role="alert">${html}</div>`;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!chosen.length) { report("warning", "Choose at least one file."); return; }
    const data = new FormData(form);
    data.delete("files");
    chosen.forEach((f) => data.append("files", f, f.webkitRelativePath || f.name));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.jsonUrl);
    xhr.setRequestHeader("Accept", "application/json");
    bar.classList.remove("d-none");
    const inner = bar.querySelector(".progress-bar");
    xhr.upload.addEventListener("progress", (ev) => {
      if (!ev.lengthComputable) return;
      const pct = Math.round((ev.loaded / ev.total) * 100);
      inner.style.width = pct + "%"; inner.textContent = pct < 100 ? pct + "%" : "Checking the files…";
      bar.setAttribute("aria-valuenow", pct);
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (xhr.status === 200 || xhr.status === 201) {
        window.location = body.url;
        return;
      }
      bar.classList.add("d-none");
      const list = (body.rejected || []).slice(0, 50).map((r) => `<li><code>${escape(r.name)}</code>: ${escape(r.reason)}</li>`).join("");
      report("danger", `<strong>${escape(body.error || "The upload failed.")}</strong>${list ? `<ul class="mb-0 mt-2">${list}</ul>` : ""}`);
    });
    xhr.addEventListener("error", () => { bar.classList.add("d-none"); report("danger", "The connection failed; nothing was stored. Try again."); });
    xhr.send(data);
  });
})();
