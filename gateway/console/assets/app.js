// The console's one script: refresh the lists, follow a run's events, send Cancel and Retry.
// It writes text only (textContent), never HTML, and talks to the runs API of its own origin.
"use strict";

const REFRESH_MS = 2000;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  return td;
}

function fillTable(table, rows, link) {
  const columns = table.dataset.columns.split(",");
  const body = document.createElement("tbody");
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const column of columns) {
      const td = cell(row[column]);
      if (column === link && row[column]) {
        const a = document.createElement("a");
        a.href = "/console/runs/" + encodeURIComponent(row[column]);
        a.textContent = row[column];
        td.textContent = "";
        td.appendChild(a);
      }
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  table.replaceChild(body, table.tBodies[0]);
}

async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(path + " answered " + response.status);
  return response.json();
}

function overview() {
  const refresh = async () => {
    try {
      const [runs, deliveries] = await Promise.all([getJSON("/api/runs?limit=50"), getJSON("/api/deliveries?limit=50")]);
      fillTable(document.getElementById("runs"), runs.runs, "run_id");
      fillTable(document.getElementById("deliveries"), deliveries.deliveries, null);
    } catch (error) {
      console.warn(error);
    }
  };
  setInterval(refresh, REFRESH_MS);
}

function showStatus(status) {
  const field = document.querySelector('[data-field="status"]');
  if (field) field.textContent = status;
  const running = status === "queued" || status === "running" || status === "retrying";
  document.getElementById("cancel").hidden = !running;
  document.getElementById("retry").hidden = !(status === "failed" || status === "timed_out" || status === "cancelled");
}

function runPage(main) {
  const runId = main.dataset.run;
  const progress = document.getElementById("progress");
  const events = new EventSource("/api/runs/" + encodeURIComponent(runId) + "/events");
  events.addEventListener("status", (message) => {
    const data = JSON.parse(message.data);
    showStatus(data.status);
    if (data.error) {
      const field = document.querySelector('[data-field="error"]');
      if (field) field.textContent = data.error;
    }
  });
  events.addEventListener("progress", (message) => {
    const item = document.createElement("li");
    item.textContent = JSON.parse(message.data).text;
    progress.appendChild(item);
  });
  events.addEventListener("message", (message) => {
    const item = document.createElement("li");
    const data = JSON.parse(message.data);
    item.textContent = "follow-up from " + (data.actor || "someone") + ": " + data.text;
    progress.appendChild(item);
  });
  events.addEventListener("reply", (message) => {
    const data = JSON.parse(message.data);
    document.getElementById("reply").textContent = data.shown || data.text || "";
    document.getElementById("reply-note").textContent = data.posted ? "Posted." : data.note || "Not posted.";
  });
  events.addEventListener("done", () => events.close());
  for (const action of ["cancel", "retry"]) {
    document.getElementById(action).addEventListener("click", async () => {
      const result = document.getElementById("action-result");
      const response = await fetch("/api/runs/" + encodeURIComponent(runId) + "/" + action, {
        method: "POST",
        credentials: "same-origin",
      });
      const body = await response.json().catch(() => ({}));
      result.textContent = response.ok ? action + ": " + (body.status || "requested") : body.detail || body.error || response.status;
      if (response.ok && action === "retry") window.location.reload();
    });
  }
  showStatus(document.querySelector('[data-field="status"]').textContent);
}

const main = document.querySelector("main[data-page]");
if (main && main.dataset.page === "overview") overview();
if (main && main.dataset.page === "run") runPage(main);
