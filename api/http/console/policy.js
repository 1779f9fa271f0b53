// The console's delivery policy section: the model's policy (GET /v1/models/{m}/policy)
// stage by stage, and its newest candidate walking them. Built as text from the JSON like
// the rest of the model page. It reads without colour: each stage of the walk says where
// it stands in words (✓ passed, ✗ FAILED, ▶ now, … held, · to come), a failed stage has a
// dashed border as well as a red one, and the figures each verdict was made on are text.
"use strict";

const Policy = (() => {
  const esc = Charts.esc;
  const num = (x) => (typeof x === "number" ? String(Number(x.toPrecision(4))) : esc(x));
  const pct = (x) => (x == null ? "—" : `${Number((100 * x).toPrecision(4))}%`);
  const secs = (x) => (x == null ? "—" : x >= 3600 && x % 3600 === 0 ? `${x / 3600} h` : x >= 60 && x % 60 === 0 ? `${x / 60} min` : `${num(x)} s`);
  const when = (epoch) => (epoch ? new Date(1000 * epoch).toISOString().replace(/\.\d+Z$/, "Z") : "—");
  const STAGES = ["gate", "shadow", "rollout"];
  const ACTIONS = /^(policy_|alert_retrain$)/;
  // a finished stage's verdict, in words (the class draws it; the word says it)
  const VERDICTS = {
    pass: ["passed", "✓ passed"], fail: ["failed", "✗ FAILED"], superseded: ["superseded", "⊘ superseded"],
    ended: ["ended", "■ ended (deployed by hand)"], promoted: ["passed", "✓ passed"],
  };

  // One policy part's rules in words, or why it is not there
  function rules(stage, policy) {
    const part = policy[stage];
    if (stage === "gate") {
      if (!part) return "no metric gate (the signature check of a deploy only)";
      return `${esc(part.metric)} may drop by at most ${num(part.max_drop)} from the live version's`;
    }
    if (stage === "shadow") {
      if (!part) return "no shadow stage";
      return [`${secs(part.seconds)} on ${pct(part.fraction)} of requests, at least ${num(part.min_requests)} requests`,
        part.min_agreement == null ? "agreement not judged" : `agreement at least ${pct(part.min_agreement)}`,
        part.max_error_rate == null ? "errors not judged" : `error rate at most ${pct(part.max_error_rate)}`,
        `rejected when held past ${secs(part.max_hold_seconds)}`].join("; ");
    }
    if (stage === "rollout") {
      const r = part || {};
      const gates = Object.entries(r.gates || {}).filter(([, v]) => v != null).map(([k, v]) => `${esc(k)} ${num(v)}`);
      return [`steps ${(r.steps || []).map((s) => `${esc(s)}%`).join(" → ") || "the defaults"}`,
        `${secs(r.step_seconds)} a step, at least ${num(r.min_requests)} canary requests`,
        `gates: ${gates.join(", ") || "none"}`].join("; ");
    }
    if (!part) return "no alert starts a retrain";
    return `${part.alerts.map(esc).join(", ")} at ${esc(part.min_severity)} or above start a ${esc(part.action)}
      (${esc(part.retrain.dataset)}, ${esc(part.retrain.estimator)}), at most once every ${secs(part.cooldown_seconds)}`;
  }

  function policyTable(policy) {
    const rows = [["1", "gate", "Gate"], ["2", "shadow", "Shadow"], ["3", "rollout", "Rollout"], ["", "on_alert", "On alert"]];
    return `<table id="policy-stages"><caption>The policy's stages, in order, then what an alert does</caption>
    <thead><tr><th scope="col">#</th><th scope="col">Stage</th><th scope="col">Rule</th></tr></thead><tbody>
    ${rows.map(([n, key, label]) => `<tr data-stage="${key}"><td>${n}</td><th scope="row">${label}</th><td>${rules(key, policy)}</td></tr>`).join("")}
    </tbody></table>`;
  }

  // The figures a verdict was made on: name and value, nested ones (a judgement) as JSON
  const ORDER = ["metric", "live_value", "candidate", "drop", "max_drop", "requests", "compared", "rows", "agreement",
    "min_agreement", "error_rate", "max_error_rate", "psi", "failed", "step_percent", "state"];
  const rank = (k) => (ORDER.includes(k) ? ORDER.indexOf(k) : ORDER.length);
  function figures(values) {
    const rows = Object.entries(values || {}).sort(([a], [b]) => rank(a) - rank(b)).filter(([, v]) => v != null && v !== "" && !(typeof v === "object" && !Object.keys(v).length));
    if (!rows.length) return "";
    return `<dl class="figures">${rows.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd class="${typeof v === "object" || k === "live" ? "mono" : ""}">${
      typeof v === "object" ? esc(JSON.stringify(v)) : num(v)}</dd></div>`).join("")}</dl>`;
  }

  // The candidate's walk: each stage of the policy it started with, in order, with where it stands
  function walk(c) {
    const snapshot = c.policy || {};
    const stages = STAGES.filter((s) => s !== "shadow" || snapshot.shadow);
    const done = Object.fromEntries((c.stages || []).map((s) => [s.stage, s]));
    const items = stages.map((stage, i) => {
      const record = done[stage];
      let cls, word, body = "";
      if (record) {
        [cls, word] = VERDICTS[record.verdict] || ["ended", esc(record.verdict)];
        body = `${figures(record.figures)}${record.reason ? `<p class="reason">${esc(record.reason)}</p>` : ""}`;
        body = `<p class="hint">${when(record.started_at)} → ${when(record.ended_at)}</p>${body}`;
      } else if (c.state === "running" && c.stage === stage) {
        [cls, word] = c.held_since ? ["held", "… held"] : ["now", "▶ now"];
        body = `<p class="hint">since ${when(c.stage_started_at)}${c.held_since ? `, held since ${when(c.held_since)}` : ""}</p>${figures(c.last_figures)}`;
      } else {
        // after the running stage: to come; after the stage a finished candidate ended at: not reached
        [cls, word] = c.state === "running" ? ["to-come", "· to come"] : ["not-reached", "— not reached"];
      }
      return `<li class="stage ${cls}" data-stage="${stage}" data-verdict="${esc(cls)}"><span class="num">${i + 1}</span>
        <strong>${esc(stage)}</strong> <span class="word">${word}</span>${body}</li>`;
    });
    return `<ol class="walk" aria-label="Where ${esc(c.version)} stands in the policy">${items.join("")}</ol>`;
  }

  function candidateBlock(c) {
    if (!c) return '<p id="policy-candidate">No candidate yet: the next version published is one.</p>';
    const where = c.state === "running" ? `at its <strong>${esc(c.stage)}</strong>`
      : `<strong class="${c.state === "rejected" ? "bad" : ""}">${esc(c.state)}</strong> at its ${esc(c.stage)}`;
    return `<div id="policy-candidate" data-state="${esc(c.state)}" data-stage="${esc(c.stage)}">
      <p>Candidate <span class="mono" id="policy-version">${esc(c.version)}</span> (live was ${esc(c.live || "nothing")}): ${where}
      ${c.reason ? `— <span class="reason" id="policy-reason">${esc(c.reason)}</span>` : ""}</p>${walk(c)}</div>`;
  }

  function recent(entries) {
    const rows = (entries || []).filter((e) => ACTIONS.test(e.action)).slice(0, 6);
    if (!rows.length) return "";
    return `<table id="policy-history"><caption>Latest policy and alert entries in history</caption>
    <thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Who</th><th scope="col">Version</th><th scope="col">Why</th></tr></thead><tbody>
    ${rows.map((e) => `<tr><td>${esc(e.time)}</td><td>${esc(e.action)}</td><td>${esc(e.actor)}</td><td class="mono">${esc(e.to || "—")}</td>
      <td class="reason">${esc(e.reason)}</td></tr>`).join("")}</tbody></table>`;
  }

  // The section: ``view`` is GET .../policy (null when the server has none), ``entries`` the page's history
  function section(model, view, entries) {
    let html = '<section id="policy"><h3>Delivery policy</h3>';
    if (!view) return `${html}<p>This server does not report delivery policies.</p></section>`;
    if (!view.policy) {
      html += `<p id="policy-none">No delivery policy: a version goes live only when someone deploys it.
        Set one with <code>modelswap policy set ${esc(model)} policy.json</code>.</p>`;
    } else {
      const p = view.policy;
      html += `<p id="policy-set">Set by <strong>${esc(p.set_by || "unknown")}</strong> at ${esc(p.set_at || "—")}.</p>${policyTable(p)}`;
    }
    if (view.candidate || view.policy) html += candidateBlock(view.candidate);
    return `${html}${recent(entries)}</section>`;
  }

  return { section };
})();
