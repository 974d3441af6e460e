// visionloop's pages: live events, the tool form, replay. Plain JavaScript, no build step.
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const seen = {};     // job id -> events received so far
  const waiters = {};  // job id -> callbacks
  let running = null, waiting = 0;

  function api(method, url, body) {
    return fetch(url, { method: method, body: body, headers: { "Accept": "application/json" } })
      .then(r => r.json().then(data => ({ ok: r.ok, status: r.status, data: data })));
  }

  // --- events ----------------------------------------------------------------------------------
  function onEvent(e) {
    if (typeof e.waiting === "number") waiting = e.waiting;
    if (e.type === "started") running = e.name;
    if (e.type === "done") {
      running = null;
      const fresh = $("#fresh");
      if (fresh && e.runs && e.runs.length) fresh.hidden = false;
    }
    const q = $("#queue");
    if (q) q.textContent = running ? `running ${running}` + (waiting ? `, ${waiting} waiting` : "") : (waiting ? `${waiting} waiting` : "idle");
    if (!e.job) return;
    (seen[e.job] = seen[e.job] || []).push(e);
    (waiters[e.job] || []).forEach(cb => cb(e));
  }
  const source = new EventSource("/api/events");
  ["queued", "started", "progress", "token", "status", "done", "cancelling"].forEach(
    t => source.addEventListener(t, ev => onEvent(JSON.parse(ev.data))));

  // Follow a job: `handle(event)` for each event, past and future; "done" also comes from a
  // look at the job itself, in case it ended before the events were connected.
  function follow(id, handle) {
    let ended = false;
    const once = e => { if (ended) return; if (e.type === "done") ended = true; handle(e); };
    (waiters[id] = waiters[id] || []).push(once);
    (seen[id] || []).forEach(once);
    api("GET", `/api/jobs/${id}`).then(r => {
      if (r.ok && r.data.finished) once({ type: "done", job: id, status: r.data.status, error: r.data.error, runs: r.data.runs });
    });
  }

  // --- the job panel shared by the tool form and the run page ------------------------------------
  function showJob(id, onDone) {
    const panel = $("#job"), bar = $("#bar"), status = $("#job-status"), tokens = $("#tokens");
    panel.hidden = false;
    bar.removeAttribute("value");
    status.textContent = "queued";
    if (tokens) { tokens.textContent = ""; tokens.hidden = true; }
    $("#cancel").onclick = () => api("DELETE", `/api/jobs/${id}`);
    follow(id, e => {
      if (e.type === "started") status.textContent = "running";
      if (e.type === "status") status.textContent = e.line;
      if (e.type === "progress" && e.fraction != null) { bar.value = e.fraction; status.textContent = `step ${e.checkpoint} of ${e.total}`; }
      if (e.type === "token" && tokens) { tokens.hidden = false; tokens.textContent += e.text; }
      if (e.type === "cancelling") status.textContent = "cancelling";
      if (e.type === "done") {
        bar.value = 1;
        status.textContent = e.status === "done" ? "done" : `${e.status}: ${e.error || ""}`;
        panel.dataset.status = e.status;
        onDone(e);
      }
    });
  }

  function fileUrl(rel) { return "/files/" + rel.split("/").map(encodeURIComponent).join("/"); }
  function runUrl(id) { return "/runs/" + encodeURI(id); }

  function showRun(runId) {
    const box = $("#result");
    api("GET", `/api/runs/${encodeURI(runId)}`).then(r => {
      if (!r.ok) { box.textContent = r.data.error || "no record of the run"; return; }
      const run = r.data;
      box.innerHTML = "";
      const link = document.createElement("a");
      link.href = runUrl(run.id);
      link.className = "open-run";
      link.textContent = `open the run (${run.name}${run.seed != null ? ", seed " + run.seed : ""})`;
      box.appendChild(link);
      if (run.text) { const pre = document.createElement("pre"); pre.className = "answer"; pre.textContent = run.text; box.appendChild(pre); }
      if (run.error) { const p = document.createElement("p"); p.className = "error"; p.textContent = run.error; box.appendChild(p); }
      run.images.forEach(rel => {
        const fig = document.createElement("figure"), img = document.createElement("img"), cap = document.createElement("figcaption");
        img.src = fileUrl(rel); img.alt = run.prompt || run.name; img.className = "made";
        cap.textContent = `${rel}${run.seed != null ? " · seed " + run.seed : ""}`;
        fig.appendChild(img); fig.appendChild(cap); box.appendChild(fig);
      });
    });
  }

  // --- the tool form -------------------------------------------------------------------------------
  function setUpForm(form) {
    form.querySelectorAll(".drop").forEach(zone => {
      const file = $("input[type=file]", zone), path = $("input.path", zone), preview = $(".preview", zone);
      const show = () => {
        preview.innerHTML = "";
        Array.from(file.files).forEach(f => { const img = document.createElement("img"); img.src = URL.createObjectURL(f); preview.appendChild(img); });
        if (file.files.length) path.value = "";
      };
      file.addEventListener("change", show);
      zone.addEventListener("dragover", e => { e.preventDefault(); zone.classList.add("over"); });
      zone.addEventListener("dragleave", () => zone.classList.remove("over"));
      zone.addEventListener("drop", e => { e.preventDefault(); zone.classList.remove("over"); file.files = e.dataTransfer.files; show(); });
    });
    form.addEventListener("submit", e => {
      e.preventDefault();
      const data = new FormData();
      Array.from(form.elements).forEach(el => {
        if (!el.name || el.disabled) return;
        if (el.type === "file") Array.from(el.files).forEach(f => data.append(el.name, f));
        else if (el.type === "checkbox") data.append(el.name, el.checked ? "true" : "false");
        else if (el.value.trim() !== "") data.append(el.name, el.value);
      });
      $("#result").innerHTML = "";
      $("#run").disabled = true;
      api("POST", `/api/tools/${form.dataset.tool}`, data).then(r => {
        if (!r.ok) { $("#run").disabled = false; $("#result").textContent = r.data.error || `error ${r.status}`; return; }
        showJob(r.data.job, ev => { $("#run").disabled = false; if (ev.runs && ev.runs.length) showRun(ev.runs[0]); });
      });
    });
  }

  // --- the run page ----------------------------------------------------------------------------------
  function replayButton(button, seed) {
    button.addEventListener("click", () => {
      button.disabled = true;
      api("POST", `/api/runs/${encodeURI(button.dataset.run)}/replay?seed=${seed}`).then(r => {
        if (!r.ok) { button.disabled = false; alert(r.data.error || `error ${r.status}`); return; }
        showJob(r.data.job, ev => {
          button.disabled = false;
          if (ev.status === "done" && ev.runs && ev.runs.length) window.location = runUrl(ev.runs[0]);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = $("#tool-form");
    if (form) setUpForm(form);
    const replay = $("#replay"), again = $("#again");
    if (replay) replayButton(replay, "same");
    if (again) replayButton(again, "new");
    const fresh = $("#fresh a");
    if (fresh) fresh.addEventListener("click", e => { e.preventDefault(); window.location.reload(); });
  });
})();
