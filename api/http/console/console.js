// The modelswap console: one page over the JSON API, no build step, no framework.
// The token lives in this tab's sessionStorage only; it is sent as a bearer header
// (never a URL, cookie or log), with a custom header no cross-site form can send. The
// server says whose it is (GET /v1/whoami): each action is enabled only where that
// token's role and models allow it, and the server checks again on every request.
"use strict";

const TOKEN_KEY = "modelswap-token";
const ROLES = ["read", "predict", "rollback", "deploy", "admin"];
const REFRESH_MS = 3000;
const $ = (id) => document.getElementById(id);
const esc = Charts.esc;
const enc = encodeURIComponent;
const token = () => sessionStorage.getItem(TOKEN_KEY);
const state = { sort: { key: "created_at", desc: true }, selected: new Set(), compare: null, busy: false, me: null };

// fnmatch's globs (*, ?, [seq], [!seq]), as the server matches a token's models
function globRegExp(glob) {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[" && glob.indexOf("]", i + 2) > i) {
      const end = glob.indexOf("]", i + 2);
      let body = glob.slice(i + 1, end).replace(/\\/g, "\\\\");
      if (body[0] === "!") body = "^" + body.slice(1);
      out += `[${body}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

// What the signed-in token may do: ``need`` a role, on ``model`` (the page's model)
function may(need, model) {
  const me = state.me;
  if (!me || ROLES.indexOf(me.role) < ROLES.indexOf(need)) return false;
  return !model || me.models === null || me.models.some((g) => globRegExp(g).test(model));
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "X-Modelswap-Console": "1" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

const optional = (promise) => promise.catch((e) => (e.status === 404 ? null : Promise.reject(e)));

function say(message) { $("notice").textContent = message; $("error").textContent = ""; }
function fail(message) { $("error").textContent = message; $("notice").textContent = ""; }

// -- rendering helpers -----------------------------------------------------------------
function fleetCell(fleet) {
  if (!fleet) return "—";
  const lagging = fleet.processes.filter((p) => p.version !== fleet.current || p.last_load_error);
  const cls = !fleet.processes.length ? "warn" : lagging.length ? "bad" : "ok";
  const word = !fleet.processes.length ? "no process" : lagging.length ? "NOT CONVERGED" : "converged";
  return `<span class="${cls}">${esc(fleet.summary)} — ${word}</span>`;
}

function alertsCell(monitor) {
  if (!monitor || !monitor.alerts.length) return '<span class="ok">no alerts</span>';
  const counts = {};
  for (const a of monitor.alerts) counts[a.severity] = (counts[a.severity] || 0) + 1;
  return ["CRITICAL", "WARNING", "INFO"].filter((s) => counts[s])
    .map((s) => `<span class="badge ${s}">${counts[s]} ${s}</span>`).join(" ");
}

// The model's own error-rate warning threshold (monitor.json, `modelswap monitor set`)
const errorLimit = (monitor) => monitor?.thresholds?.error_rate_warning ?? 0.05;

// A variant's traffic in words: the model's errors (5xx, timeouts; red past the model's
// error-rate warning threshold) and, apart and never red, the requests refused as the
// client's (4xx: a bad body, a missing column)
function trafficLine(row, limit) {
  const w = row.window;
  const rate = w.server_error_rate == null ? "—" : `${(100 * w.server_error_rate).toFixed(1)}%`;
  const cls = w.server_error_rate > limit ? "bad" : "";
  const client = w.errors.client || 0;
  return `<span class="traffic" data-variant="${esc(row.variant)}">${esc(row.variant)}: <span class="server-errors ${cls}">${rate} server errors</span>,
    <span class="client-errors">${client} client error${client === 1 ? "" : "s"} (4xx)</span>,
    p99 ${w.p99_ms == null ? "—" : w.p99_ms.toFixed(1) + " ms"}, ${w.requests} req</span>`;
}

function trafficCells(monitor) {
  if (!monitor || !monitor.versions.length) return "no traffic counted";
  return monitor.versions.map((row) => trafficLine(row, errorLimit(monitor))).join("<br>");
}

function delivery(canary, rollout, shadow) {
  const parts = [];
  if (canary && canary.running) parts.push(`canary ${esc(canary.config.version)} at ${(100 * canary.config.fraction).toFixed(0)}%`);
  if (rollout && rollout.running) parts.push(`rollout ${esc(rollout.version)} ${esc(rollout.state)} at ${esc(rollout.step_percent)}%`);
  if (shadow && shadow.running) parts.push(`shadow ${esc(shadow.version)}${shadow.agreement != null ? `, agreement ${(100 * shadow.agreement).toFixed(1)}%` : ""}`);
  return parts.join("<br>") || "—";
}

function keyMetric(record) {
  if (!record || !record.metrics) return "—";
  const [name, value] = Object.entries(record.metrics)[0] || [];
  return name ? `${esc(name)} ${esc(typeof value === "number" ? +value.toFixed(4) : value)}` : "—";
}

// A button for an action that needs the role ``need`` on the page's model
function actButton(id, label, attrs = "", cls = "", need = "deploy") {
  const model = state.model && state.model.name;
  let off = "";
  if (!state.me) off = ' disabled title="Enter a token (top right) to act"';
  else if (!may(need, model)) off = ` disabled title="Needs the ${esc(need)} role on ${esc(model)}: signed in as ${esc(state.me.name)} (${esc(state.me.role)})"`;
  return `<button type="button" id="${id}" class="${cls}" data-needs="${esc(need)}" ${attrs}${off}>${esc(label)}</button>`;
}

// -- pages -----------------------------------------------------------------------------
async function overview() {
  const models = (await api("GET", "/v1/models")).models;
  const rows = await Promise.all(models.map(async (m) => {
    const base = `/v1/models/${enc(m.model)}`;
    const [fleet, monitor, canary, record, rollout, shadow] = await Promise.all([
      api("GET", `${base}/fleet`), optional(api("GET", `${base}/monitor`)), api("GET", `${base}/canary`),
      m.current ? api("GET", `${base}/versions/${enc(m.current)}`) : null,
      optional(api("GET", `${base}/rollout`)), optional(api("GET", `${base}/shadow`)),
    ]);
    return { m, fleet, monitor, canary, record, rollout, shadow };
  }));
  $("crumbs").innerHTML = "";
  return `<h2>Models</h2>
  <table id="models"><thead><tr><th scope="col">Model</th><th scope="col">Live version</th><th scope="col">Key metric</th>
  <th scope="col">Delivery</th><th scope="col">Fleet</th><th scope="col">Alerts</th><th scope="col">Traffic (window)</th></tr></thead><tbody>
  ${rows.map(({ m, fleet, monitor, canary, record, rollout, shadow }) => `<tr data-model="${esc(m.model)}">
    <th scope="row"><a href="#/models/${enc(m.model)}">${esc(m.model)}</a></th>
    <td class="mono live">${esc(m.current || "nothing live")}</td><td>${keyMetric(record && record.version ? record.version : record)}</td>
    <td>${delivery(canary, rollout, shadow)}</td><td>${fleetCell(fleet)}</td><td>${alertsCell(monitor)}</td><td>${trafficCells(monitor)}</td></tr>`).join("")}
  </tbody></table>${models.length ? "" : "<p>No model in the store yet.</p>"}`;
}

async function modelPage(model) {
  const base = `/v1/models/${enc(model)}`;
  const [info, versions, history, fleet, canary, monitor, rollout, shadow, policy] = await Promise.all([
    api("GET", base), api("GET", `${base}/versions`), api("GET", `${base}/history?limit=50`), api("GET", `${base}/fleet`),
    api("GET", `${base}/canary`), optional(api("GET", `${base}/monitor`)), optional(api("GET", `${base}/rollout`)),
    optional(api("GET", `${base}/shadow`)), optional(api("GET", `${base}/policy`)),
  ]);
  $("crumbs").innerHTML = `<a href="#/">models</a> / <strong>${esc(model)}</strong>`;
  state.model = { name: model, info, versions };
  return `<h2>${esc(model)}: live <span class="mono" id="live-version">${esc(info.current || "nothing")}</span></h2>
  <div class="actions">
    ${actButton("rollback", info.previous ? `Roll back to ${info.previous}` : "Roll back", info.previous ? "" : "disabled", "danger", "rollback")}
    ${state.me ? "" : '<span class="hint" id="readonly-hint">Read-only: enter a token to roll back, deploy or change a canary.</span>'}
  </div>
  <p>Fleet: ${fleetCell(fleet)} · Alerts: ${alertsCell(monitor)}</p>
  ${deliverySection(model, info, versions, canary, rollout, shadow)}
  ${Policy.section(model, policy, history.history)}
  <section>${versionsSection(versions, info)}</section>
  <section><h3>History</h3>${historyTable(history.history)}</section>
  <div class="grid"><section><h3>Processes</h3>${fleetTable(fleet)}</section>
  <section><h3>Alerts</h3>${alertsTable(monitor)}</section></div>
  <section id="traffic"><h3>Traffic (window)</h3>${trafficSection(monitor)}</section>
  <section id="drift-charts"><h3>Drift (window): reference and live distributions</h3>${driftCharts(monitor)}
  <h4>Drift figures</h4>${driftTable(monitor)}</section>
  <section><h3>Live input signature</h3>${signatureTable(info.signature)}</section>`;
}

function deliverySection(model, info, versions, canary, rollout, shadow) {
  const running = canary && canary.running;
  const choices = versions.versions.filter((v) => v.id !== info.current && v.status !== "corrupt")
    .map((v) => `<option value="${esc(v.id)}">${esc(v.id)}</option>`).join("");
  let html = "<h3>Canary and rollout</h3>";
  if (running) {
    const c = canary.config;
    html += `<p>Canary <span class="mono">${esc(c.version)}</span> on ${(100 * c.fraction).toFixed(1)}% of traffic.</p>
    <div class="actions">${actButton("canary-promote", "Promote canary")} ${actButton("canary-stop", "Stop canary", "", "danger", "rollback")}</div>`;
  } else {
    html += `<div class="actions"><label for="canary-version">Canary version</label>
    <select id="canary-version">${choices}</select><label for="canary-fraction">fraction</label>
    <input id="canary-fraction" type="number" min="0.01" max="0.99" step="0.01" value="0.1" size="4">
    ${actButton("canary-start", "Start canary", choices ? "" : "disabled")}</div>`;
  }
  if (rollout && rollout.state) html += rolloutBlock(rollout);
  if (shadow && shadow.running) {
    const s = shadow.stats || {};
    html += `<p id="shadow">Shadow <span class="mono">${esc(shadow.version)}</span> on ${(100 * shadow.fraction).toFixed(0)}% of requests:
    agreement ${s.agreement == null ? "—" : (100 * s.agreement).toFixed(1) + "%"}, PSI ${s.psi == null ? "—" : s.psi.toFixed(3)},
    ${s.compared || 0} compared, ${s.errors || 0} shadow errors, ${s.dropped || 0} dropped.</p>
    ${shadowChart(s)}
    <div class="actions">${actButton("shadow-stop", "Stop shadow", "", "danger", "rollback")}</div>`;
  }
  return html;
}

function shadowChart(stats) {
  const series = (stats.series || []).filter((p) => p.rows);
  if (!series.length) return "";
  const times = series.map((p) => p.start);
  if (stats.kind === "regressor") {
    return Charts.line("Shadow: mean |difference| from the live version over time", times,
      [{ label: "mean |Δ|", values: series.map((p) => p.mean_abs_delta) }], (v) => Number(v.toPrecision(3)).toString(), { id: "chart-shadow" });
  }
  return Charts.line("Shadow: agreement with the live version over time", times,
    [{ label: "agreement", values: series.map((p) => p.agreement) }], (v) => `${(100 * v).toFixed(1)}%`, { max: 1, id: "chart-shadow" });
}

function rolloutBlock(r) {
  const steps = r.steps.map((s) => (s === r.step_percent && r.running ? `<strong>${esc(s)}%</strong>` : `${esc(s)}%`)).join(" → ");
  let html = `<div id="rollout"><p>${r.running ? "Rollout" : "Last rollout"} of <span class="mono">${esc(r.version)}</span>:
    <span class="${r.state === "aborted" ? "bad" : ""}">${esc(r.state)}</span> (${steps})${r.driver ? `, driven by ${esc(r.driver)}` : ""}</p>`;
  if (r.ended) html += `<p>${esc(r.ended)}</p>`;
  const j = r.last_judgement;
  if (j && j.gates) html += `<p>Last judgement: ${esc(j.verdict)} at ${esc(j.step_percent)}% (canary ${esc(j.canary.requests)} requests)</p>`;
  html += Charts.rollout(r);
  if (r.running) {
    const toggle = r.state === "paused" ? actButton("rollout-resume", "Resume rollout") : actButton("rollout-pause", "Pause rollout", "", "", "rollback");
    html += `<div class="actions">${toggle} ${actButton("rollout-abort", "Abort rollout", "", "danger", "rollback")}</div>`;
  }
  return html + "</div>";
}

function versionsSection(versions, info) {
  const rows = [...versions.versions];
  const { key, desc } = state.sort;
  const val = (v) => (key === "metric" ? Object.values(v.metrics || {})[0] ?? -Infinity : v[key]);
  rows.sort((a, b) => (val(a) > val(b) ? 1 : val(a) < val(b) ? -1 : 0) * (desc ? -1 : 1));
  const sortBtn = (k, label) => `<th scope="col" aria-sort="${key === k ? (desc ? "descending" : "ascending") : "none"}"><button class="sort" data-sort="${k}">${label}</button></th>`;
  const marks = (v) => [v.id === info.current ? "live" : "", v.id === info.canary ? "canary" : "", v.id === info.previous ? "previous" : "", ...(v.aliases || [])].filter(Boolean).join(", ");
  return `<h3>Versions</h3><table id="versions"><thead><tr><th scope="col">Compare</th>${sortBtn("id", "Version")}${sortBtn("metric", "Metrics")}
  <th scope="col">Tags</th>${sortBtn("created_at", "Created")}${sortBtn("size", "Size")}${sortBtn("status", "Status")}<th scope="col">Marks</th><th scope="col">Action</th></tr></thead><tbody>
  ${rows.map((v) => `<tr data-version="${esc(v.id)}"><td><input type="checkbox" class="pick" aria-label="compare ${esc(v.id)}" value="${esc(v.id)}" ${state.selected.has(v.id) ? "checked" : ""}></td>
    <td class="mono">${esc(v.id)}</td><td>${Object.entries(v.metrics || {}).map(([k, x]) => `${esc(k)} ${esc(typeof x === "number" ? +x.toFixed(4) : x)}`).join("<br>")}</td>
    <td>${Object.entries(v.tags || {}).map(([k, x]) => `${esc(k)}=${esc(x)}`).join(" ")}</td><td>${esc(v.created_at)}</td><td>${esc(v.size)}</td>
    <td class="${v.status === "corrupt" ? "bad" : ""}">${esc(v.status)}</td><td>${esc(marks(v))}</td>
    <td>${v.id === info.current ? "" : actButton(`deploy-${v.id}`, "Deploy", `data-deploy="${esc(v.id)}"`)}</td></tr>`).join("")}
  </tbody></table><div class="actions"><button type="button" id="compare">Compare the two selected</button></div>
  ${state.compare ? compareTable(state.compare) : ""}`;
}

function compareTable(result) {
  const rows = Object.entries(result).filter(([k]) => k !== "model");
  return `<table id="comparison"><caption>Comparison</caption><tbody>${rows.map(([k, v]) =>
    `<tr><th scope="row">${esc(k)}</th><td class="mono">${esc(typeof v === "object" ? JSON.stringify(v) : v)}</td></tr>`).join("")}</tbody></table>`;
}

function historyTable(entries) {
  if (!entries.length) return "<p>No history yet.</p>";
  return `<table id="history"><thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Who</th><th scope="col">From → to</th><th scope="col">Why</th></tr></thead><tbody>
  ${entries.map((e) => `<tr><td>${esc(e.time)}</td><td>${esc(e.action)}</td><td>${esc(e.actor)}</td><td class="mono">${esc(e.from || "—")} → ${esc(e.to || "—")}</td><td class="reason">${esc(e.reason)}</td></tr>`).join("")}</tbody></table>`;
}

function fleetTable(fleet) {
  if (!fleet.processes.length) return "<p>No serving process reported in.</p>";
  const now = Date.now() / 1000;
  return `<table id="fleet"><thead><tr><th scope="col">Host</th><th scope="col">PID</th><th scope="col">Version</th><th scope="col">Heartbeat</th><th scope="col">Load error</th></tr></thead><tbody>
  ${fleet.processes.map((p) => `<tr><td>${esc(p.host)}</td><td>${esc(p.pid)}</td>
    <td class="mono ${p.version === fleet.current ? "ok" : "bad"}">${esc(p.version || "nothing")}${p.version === fleet.current ? "" : " (lagging)"}</td>
    <td>${Math.max(0, now - p.time).toFixed(1)} s ago</td><td class="${p.last_load_error ? "bad" : ""}">${esc(p.last_load_error || "none")}</td></tr>`).join("")}</tbody></table>`;
}

function alertsTable(monitor) {
  if (!monitor) return "<p>Monitoring is not available on this server.</p>";
  if (!monitor.alerts.length) return '<p class="ok">No active alerts.</p>';
  return `<table id="alerts"><thead><tr><th scope="col">Severity</th><th scope="col">Kind</th><th scope="col">What</th><th scope="col">Since</th></tr></thead><tbody>
  ${monitor.alerts.map((a) => `<tr><td><span class="badge ${esc(a.severity)}">${esc(a.severity)}</span></td><td>${esc(a.kind)}</td><td>${esc(a.message)}</td><td>${esc(a.first_seen)}</td></tr>`).join("")}</tbody></table>`;
}

function driftTable(monitor) {
  const rows = [];
  for (const v of (monitor && monitor.versions) || []) {
    const d = v.window.drift;
    for (const f of [...d.features, ...(d.prediction ? [d.prediction] : [])]) rows.push([v, f]);
  }
  if (!rows.length) return "<p>No drift figures yet (no traffic in the window, or versions without a reference).</p>";
  const num = (x, n = 3) => (x == null ? "—" : (+x).toFixed(n));
  return `<table id="drift"><thead><tr><th scope="col">Version</th><th scope="col">Variant</th><th scope="col">Feature</th><th scope="col">PSI</th><th scope="col">JS</th><th scope="col">KS (info)</th><th scope="col">Values</th><th scope="col">Verdict</th></tr></thead><tbody>
  ${rows.map(([v, f]) => `<tr><td class="mono">${esc(v.version)}</td><td>${esc(v.variant)}</td><td>${esc(f.feature)}</td><td>${num(f.psi)}</td><td>${num(f.js)}</td><td>${num(f.ks)}</td><td>${esc(f.samples)}</td>
    <td class="${f.severity === "warning" ? "warn" : ""}">${esc(f.severity)}</td></tr>`).join("")}</tbody></table>`;
}

// How far a drift is from fine: drifted features first, then the largest PSI
const SEVERITY_RANK = { warning: 0, info: 1, none: 2, insufficient_data: 3, no_reference: 4 };
const byDrift = (a, b) => (SEVERITY_RANK[a.severity] ?? 5) - (SEVERITY_RANK[b.severity] ?? 5) || (b.psi ?? -1) - (a.psi ?? -1);

function driftCharts(monitor) {
  const rows = ((monitor && monitor.versions) || []).filter((v) => v.window.drift.features.some((f) => f.histogram));
  if (!rows.length) return "<p>No distributions yet (no traffic in the window, or versions without a reference).</p>";
  return rows.map((v) => {
    const d = v.window.drift;
    const features = d.features.filter((f) => f.histogram).sort(byDrift);
    const key = (name) => `${v.version}/${v.variant}/${name}`;
    const prediction = d.prediction && d.prediction.histogram ? Charts.distribution(d.prediction, "predictions", key("prediction")) : "";
    return `<div class="drift-version" data-version="${esc(v.version)}" data-variant="${esc(v.variant)}">
      <h4><span class="mono">${esc(v.version)}</span> (${esc(v.variant)}): ${features.length} features, drifted first</h4>
      <div class="charts">${features.map((f) => Charts.distribution(f, f.feature, key(`feature ${f.feature}`))).join("")}${prediction}</div></div>`;
  }).join("");
}

function trafficSection(monitor) {
  const rows = (monitor && monitor.versions) || [];
  if (!rows.length || !rows[0].series) return "<p>No traffic counted in the window.</p>";
  const times = rows[0].series.map((p) => p.start);
  const label = (r) => `${r.variant} ${r.version.slice(-6)}`;
  const lines = (pick) => rows.map((r) => ({ label: label(r), values: r.series.map(pick) }));
  const count = (v) => String(Math.round(v));
  return `<p>${rows.map((row) => trafficLine(row, errorLimit(monitor))).join("<br>")}</p><div class="charts">
    ${Charts.line("Requests per bucket", times, lines((p) => p.requests), count, { id: "chart-requests" })}
    ${Charts.line("Server errors (5xx, timeouts) per bucket", times, lines((p) => p.errors.server + p.errors.timeout), count, { id: "chart-server-errors" })}
    ${Charts.line("Client errors (4xx, not the model's) per bucket", times, lines((p) => p.errors.client), count, { id: "chart-client-errors" })}
    ${Charts.line("p99 latency per bucket", times, lines((p) => p.p99_ms), (v) => `${v.toFixed(1)} ms`, { id: "chart-p99" })}</div>`;
}

function signatureTable(signature) {
  if (!signature) return "<p>Nothing live.</p>";
  return `<table id="signature"><thead><tr><th scope="col">#</th><th scope="col">Column</th><th scope="col">Type</th><th scope="col">Nulls</th><th scope="col">Sent</th></tr></thead><tbody>
  ${signature.inputs.map((c, i) => `<tr><td>${i}</td><td>${esc(c.name ?? "(position)")}</td><td>${esc(c.type)}</td><td>${c.nullable ? "allowed" : "refused"}</td>
    <td>${c.required === false ? "optional (null when left out)" : "required"}</td></tr>`).join("")}</tbody></table>
  ${signature.output && signature.output.classes ? `<p>Classes: ${signature.output.classes.map(esc).join(", ")}</p>` : ""}`;
}

// -- actions ---------------------------------------------------------------------------
function confirmAction(text) {
  return new Promise((resolve) => {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    $("confirm-reason").value = "";
    const done = (value) => { dialog.close(); resolve(value); };
    $("confirm-cancel").onclick = () => done(null);
    $("confirm-form").onsubmit = (e) => { e.preventDefault(); done($("confirm-reason").value.trim()); };
    dialog.showModal();
    $("confirm-reason").focus();
  });
}

async function act(text, method, path, body, done, action) {
  const reason = await confirmAction(text);
  if (reason === null) return;
  try {
    state.busy = true;
    await api(method, path, { ...body, reason });
    say(done);
  } catch (e) {
    fail(`${action} failed: ${e.message}`);
  } finally {
    state.busy = false;
    await render();
  }
}

document.addEventListener("click", async (event) => {
  const target = event.target.closest("button");
  if (!target || target.disabled) return;
  const m = state.model;
  const base = m ? `/v1/models/${enc(m.name)}` : "";
  if (target.id === "rollback") {
    await act(`Roll back ${m.name} from ${m.info.current} to ${m.info.previous}?`, "POST", `${base}/rollback`, {}, `Rolled back: ${m.name} now serves ${m.info.previous}`, "Rollback");
  } else if (target.dataset.deploy) {
    const v = target.dataset.deploy;
    await act(`Deploy ${v} to ${m.name} (live now: ${m.info.current || "nothing"})?`, "POST", `${base}/deploy`, { version: v }, `Deployed: ${m.name} now serves ${v}`, "Deploy");
  } else if (target.id === "canary-start") {
    const v = $("canary-version").value, f = parseFloat($("canary-fraction").value);
    await act(`Start a canary of ${v} on ${(100 * f).toFixed(0)}% of ${m.name}'s traffic?`, "POST", `${base}/canary`, { version: v, fraction: f }, `Canary started: ${v}`, "Canary start");
  } else if (target.id === "canary-stop") {
    await act(`Stop the canary of ${m.name}? All traffic goes back to ${m.info.current}.`, "DELETE", `${base}/canary`, {}, "Canary stopped", "Canary stop");
  } else if (target.id === "canary-promote") {
    await act(`Promote the canary of ${m.name} to live?`, "POST", `${base}/canary/promote`, {}, "Canary promoted", "Promote");
  } else if (target.id === "rollout-pause") {
    await act(`Pause the rollout of ${m.name}?`, "POST", `${base}/rollout/pause`, {}, "Rollout paused", "Pause");
  } else if (target.id === "rollout-resume") {
    await act(`Resume the rollout of ${m.name}? The step starts again.`, "POST", `${base}/rollout/resume`, {}, "Rollout resumed", "Resume");
  } else if (target.id === "shadow-stop") {
    await act(`Stop the shadow of ${m.name}?`, "DELETE", `${base}/shadow`, {}, "Shadow stopped", "Shadow stop");
  } else if (target.id === "rollout-abort") {
    await act(`Abort the rollout of ${m.name}? The canary stops.`, "DELETE", `${base}/rollout`, {}, "Rollout aborted", "Abort");
  } else if (target.dataset.sort) {
    const key = target.dataset.sort;
    state.sort = { key, desc: state.sort.key === key ? !state.sort.desc : false };
    await render();
  } else if (target.id === "compare") {
    const [a, b] = [...state.selected];
    if (state.selected.size !== 2) { fail("Select exactly two versions to compare."); return; }
    try { state.compare = await api("GET", `${base}/compare?a=${enc(a)}&b=${enc(b)}`); await render(); } catch (e) { fail(e.message); }
  }
});

document.addEventListener("change", (event) => {
  if (event.target.classList.contains("pick")) {
    if (event.target.checked) state.selected.add(event.target.value); else state.selected.delete(event.target.value);
  }
});

// -- token, routing, refresh -----------------------------------------------------------
// Ask the server whose the tab's token is; a refused one is forgotten, with the server's reason
async function signIn() {
  state.me = null;
  if (token()) {
    try {
      state.me = await api("GET", "/v1/whoami");
    } catch (e) {
      if (e.status === 401 || e.status === 429) { sessionStorage.removeItem(TOKEN_KEY); fail(`Token refused: ${e.message}`); }
      else fail(e.message);
    }
  }
  showToken();
}

function showToken() {
  const me = state.me;
  $("token-state").textContent = me ? `signed in as ${me.name} (${me.role})` : "read-only";
  $("token-forget").hidden = !token();
  $("token").value = "";
}

$("token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const value = $("token").value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  await signIn();
  await render();
});
$("token-forget").addEventListener("click", async () => { sessionStorage.removeItem(TOKEN_KEY); await signIn(); await render(); });

// A refresh replaces the page: a chart (or its values' toggle) that had the keyboard focus
// gets it back, and the values a reader opened stay open
function kept() {
  const active = document.activeElement;
  const figure = active && active.closest ? active.closest("#main [data-key]") : null;
  const open = [...document.querySelectorAll("#main [data-key] details[open]")].map((d) => d.closest("[data-key]").dataset.key);
  return { key: figure ? figure.dataset.key : null, summary: Boolean(active && active.tagName === "SUMMARY"), open };
}

function restore(was) {
  const find = (key) => [...document.querySelectorAll("#main [data-key]")].find((f) => f.dataset.key === key);
  for (const key of was.open) {
    const figure = find(key);
    if (figure && figure.querySelector("details")) figure.querySelector("details").open = true;
  }
  const figure = was.key && find(was.key);
  const target = figure && figure.querySelector(was.summary ? "summary" : "svg[tabindex]");
  if (target) target.focus({ preventScroll: true });
}

async function render() {
  const route = location.hash.replace(/^#\/?/, "");
  const match = route.match(/^models\/([^/]+)$/);
  try {
    const html = match ? await modelPage(decodeURIComponent(match[1])) : await overview();
    const was = kept();
    $("main").innerHTML = html;
    restore(was);
    $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e.status === 401) {
      $("main").innerHTML = '<p class="warn" id="needs-token">This server protects its reads (MODELSWAP_PROTECT_READS): enter a token above to see it.</p>';
    } else {
      fail(e.message);
    }
  }
}

function quiet() {
  const active = document.activeElement;
  return state.busy || $("confirm").open || (active && $("main").contains(active) && /INPUT|SELECT/.test(active.tagName));
}

window.addEventListener("hashchange", () => { state.compare = null; state.selected.clear(); $("notice").textContent = ""; $("error").textContent = ""; render(); });
document.addEventListener("visibilitychange", () => { if (!document.hidden) render(); });
setInterval(() => { if (!document.hidden && !quiet()) render(); }, REFRESH_MS);
signIn().then(render);
