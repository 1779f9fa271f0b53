// The console's charts: inline SVG built as text from the JSON API, no library, no build.
// Every chart reads without colour (reference bars are hatched, live ones solid; lines
// differ in dash and marker and are labelled at their end; a step says pass or FAIL in
// words) and without sight: it is focusable, and its <title> and <desc> say what it shows;
// a <details> under it holds its values as a table.
"use strict";

const Charts = (() => {
  // text for HTML: the one escaping of every console script (they load after this one)
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const DASHES = ["", "6 3", "2 3", "9 3 2 3"];
  const MARKERS = ["circle", "square", "diamond", "triangle"];
  let serial = 0;

  const num = (x) => (x == null ? "—" : String(Number(Number(x).toPrecision(3))));
  const pct = (x, digits = 1) => (x == null ? "—" : `${(100 * x).toFixed(digits)}%`);
  const short = (text, n = 10) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

  // A chart's frame: focusable, named by its title, described by its desc
  function frame(kind, width, height, title, desc, body) {
    const id = `chart-${++serial}`;
    return `<svg class="chart ${kind}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" tabindex="0"
      aria-labelledby="${id}-t ${id}-d"><title id="${id}-t">${esc(title)}</title><desc id="${id}-d">${esc(desc)}</desc>${body}</svg>`;
  }

  function valuesTable(caption, head, rows) {
    return `<details class="values"><summary>${esc(caption)}</summary><table><thead><tr>${head.map((h) => `<th scope="col">${esc(h)}</th>`).join("")}</tr></thead>
      <tbody>${rows.map((r) => `<tr>${r.map((c, i) => (i ? `<td>${esc(c)}</td>` : `<th scope="row">${esc(c)}</th>`)).join("")}</tr>`).join("")}</tbody></table></details>`;
  }

  // y axis gridlines at 0, half and the top, labelled
  function yAxis(left, top, width, height, max, label) {
    return [0, 0.5, 1].map((f) => {
      const y = top + height - f * height;
      return `<line class="grid" x1="${left}" x2="${left + width}" y1="${y}" y2="${y}"/><text class="tick" x="${left - 4}" y="${y + 3}" text-anchor="end">${esc(label(f * max))}</text>`;
    }).join("");
  }

  // The bins of a drift histogram: labels, reference shares and observed shares (nulls last,
  // left out when neither side has any)
  function bins(h) {
    let labels;
    if (h.kind === "numeric") {
      const e = h.edges;
      labels = e.length ? [`≤ ${num(e[0])}`, ...e.slice(1).map((x, i) => `${num(e[i])}–${num(x)}`), `> ${num(e[e.length - 1])}`] : ["all"];
    } else {
      labels = h.categories.map((c) => (c === "__other__" ? "other" : c));
    }
    labels.push("null");
    const total = h.observed.reduce((a, b) => a + b, 0);
    const observed = h.observed.map((n) => (total ? n / total : 0));
    // nulls, or a category, that neither side has are left out (a numeric bin stays: the edges place it)
    const keep = labels.map((_, i) => (i < labels.length - 1 && h.kind === "numeric") || h.reference[i] > 0 || h.observed[i] > 0);
    const pick = (xs) => xs.filter((_, i) => keep[i]);
    return { labels: pick(labels), reference: pick(h.reference), observed: pick(observed), counts: pick(h.observed), total, edges: h.kind === "numeric" ? h.edges : null };
  }

  // The x axis under the bars: a numeric histogram's edges where its bins meet (every
  // other one when they crowd), else each bin's name under it
  function xAxis(b, left, slot, y) {
    const tick = (x, text) => `<text class="tick" x="${x}" y="${y}" text-anchor="middle">${esc(text)}</text>`;
    if (!b.edges) return b.labels.map((label, i) => tick(left + i * slot + slot / 2, short(label, Math.max(4, Math.floor(slot / 6))))).join("");
    const every = slot < 28 ? 2 : 1;
    const edges = b.edges.map((e, i) => ((i + 1) % every === 0 || every === 1 ? tick(left + (i + 1) * slot, num(e)) : "")).join("");
    const nulls = b.labels.length > b.edges.length + 1 ? tick(left + (b.labels.length - 0.5) * slot, "null") : "";
    return edges + nulls;
  }

  // One feature's (or the predictions') reference distribution beside the live window's;
  // ``key`` names the figure across refreshes (its focus and open values are kept)
  function distribution(d, what, key) {
    const b = bins(d.histogram);
    const psi = d.psi == null ? `PSI — (${d.severity.replace("_", " ")})` : `PSI ${d.psi.toFixed(3)} (${d.severity})`;
    const title = `${what}: ${psi}`;
    const width = 380, height = 158, left = 40, top = 22, plotW = width - left - 8, plotH = 110;
    const max = Math.max(0.05, ...b.reference, ...b.observed);
    const slot = plotW / b.labels.length, bar = Math.max(2, Math.min(16, slot / 2 - 2));
    const bars = b.labels.map((label, i) => {
      const x = left + i * slot + slot / 2;
      const hr = (b.reference[i] / max) * plotH, ho = (b.observed[i] / max) * plotH;
      const tip = `${label}: reference ${pct(b.reference[i])}, live ${pct(b.observed[i])} (${b.counts[i]} values)`;
      return `<g class="bin"><title>${esc(tip)}</title>
        <rect class="bar-ref" x="${x - bar - 1}" y="${top + plotH - hr}" width="${bar}" height="${hr}"/>
        <rect class="bar-live" x="${x + 1}" y="${top + plotH - ho}" width="${bar}" height="${ho}"/></g>`;
    }).join("") + xAxis(b, left, slot, top + plotH + 12);
    const legend = `<g class="legend"><rect class="bar-ref" x="${left}" y="4" width="12" height="10"/><text x="${left + 16}" y="13">reference</text>
      <rect class="bar-live" x="${left + 90}" y="4" width="12" height="10"/><text x="${left + 106}" y="13">live (window, ${b.total} values)</text></g>`;
    const desc = `Bars per bin, reference hatched, live solid. ${b.labels.map((l, i) => `${l}: reference ${pct(b.reference[i])}, live ${pct(b.observed[i])}`).join("; ")}.`;
    const svg = frame("distribution", width, height, title, desc,
      legend + yAxis(left, top, plotW, plotH, max, (v) => pct(v, 0)) + bars);
    const table = valuesTable("Values", ["bin", "reference", "live", "live values"],
      b.labels.map((l, i) => [l, pct(b.reference[i]), pct(b.observed[i]), String(b.counts[i])]));
    return `<figure class="drift-chart ${esc(d.severity)}" data-feature="${esc(d.feature)}" data-key="${esc(key)}"><figcaption>${esc(title)}</figcaption>${svg}${table}</figure>`;
  }

  function marker(kind, x, y) {
    if (kind === "square") return `<rect class="mark" x="${x - 3}" y="${y - 3}" width="6" height="6"/>`;
    if (kind === "diamond") return `<path class="mark" d="M${x} ${y - 4}L${x + 4} ${y}L${x} ${y + 4}L${x - 4} ${y}Z"/>`;
    if (kind === "triangle") return `<path class="mark" d="M${x} ${y - 4}L${x + 4} ${y + 3}L${x - 4} ${y + 3}Z"/>`;
    return `<circle class="mark" cx="${x}" cy="${y}" r="3"/>`;
  }

  // Small line chart: ``times`` label the x axis (ISO strings), ``lines`` are {label,
  // values} with null for no value (a gap); ``format`` writes a value
  function line(title, times, lines, format, { max = null, id }) {
    const width = 300, height = 150, left = 44, top = 10, plotW = width - left - 70, plotH = 100;
    const values = lines.flatMap((l) => l.values).filter((v) => v != null);
    const ceiling = max ?? (Math.max(0, ...values) || 1);  // all zero: a flat line at the bottom of 0..1
    const x = (i) => left + (times.length > 1 ? (i / (times.length - 1)) * plotW : plotW / 2);
    const y = (v) => top + plotH - (v / ceiling) * plotH;
    const seconds = times.length > 1 && Date.parse(times[1]) - Date.parse(times[0]) < 60000;
    const clock = (t) => (t ? t.slice(11, seconds ? 19 : 16) : "");
    const paths = lines.map((l, n) => {
      let d = "", pen = false;
      l.values.forEach((v, i) => {
        if (v == null) { pen = false; return; }
        d += `${pen ? "L" : "M"}${x(i).toFixed(1)} ${y(v).toFixed(1)}`;
        pen = true;
      });
      const shape = MARKERS[n % MARKERS.length];
      const marks = l.values.map((v, i) => (v == null ? "" : `<g><title>${esc(`${l.label} at ${clock(times[i])}: ${format(v)}`)}</title>${marker(shape, x(i), y(v))}</g>`)).join("");
      const lastAt = l.values.map((v, i) => (v == null ? -1 : i)).reduce((a, b) => Math.max(a, b), -1);
      const end = lastAt < 0 ? "" : `<text class="end" x="${x(lastAt) + 6}" y="${y(l.values[lastAt]) + 3}">${esc(short(l.label, 14))}</text>`;
      return `<g class="series s${n % 4}"><path class="line" d="${d}" stroke-dasharray="${DASHES[n % DASHES.length]}"/>${marks}${end}</g>`;
    }).join("");
    const axis = `<text class="tick" x="${left}" y="${top + plotH + 14}" text-anchor="start">${esc(clock(times[0]))}</text>
      <text class="tick" x="${left + plotW}" y="${top + plotH + 14}" text-anchor="end">${esc(clock(times[times.length - 1]))}</text>`;
    const desc = `${title}, ${times.length} buckets from ${clock(times[0])} to ${clock(times[times.length - 1])} (UTC). ` +
      lines.map((l) => `${l.label}: ${l.values.map((v) => (v == null ? "none" : format(v))).join(", ")}`).join("; ") + ".";
    const svg = frame("line", width, height, title, desc, yAxis(left, top, plotW, plotH, ceiling, format) + axis + paths);
    const table = valuesTable("Values", ["bucket (UTC)", ...lines.map((l) => l.label)],
      times.map((t, i) => [clock(t), ...lines.map((l) => (l.values[i] == null ? "—" : format(l.values[i])))]));
    return `<figure class="line-chart" id="${esc(id)}" data-key="${esc(id)}"><figcaption>${esc(title)}</figcaption>${svg}${table}</figure>`;
  }

  // Which judgement belongs to each step of a rollout, and what became of the step
  function stepOutcomes(r) {
    const passed = r.passed || [];
    return r.steps.map((percent, i) => {
      if (i < passed.length) return { percent, state: "passed", judgement: passed[i] };
      if (i === r.step && r.state === "aborted") return { percent, state: "failed", judgement: r.last_judgement };
      if (i === r.step && (r.state === "running" || r.state === "paused")) {
        const j = r.last_judgement && r.last_judgement.step_percent === percent && r.last_judgement.verdict === "hold" ? r.last_judgement : null;
        return { percent, state: j ? "held" : r.state === "paused" ? "paused" : "now", judgement: j };
      }
      return { percent, state: "to come", judgement: null };
    });
  }

  const SYMBOL = { passed: "✓ passed", failed: "✗ FAILED", held: "… held", now: "▶ now", paused: "‖ paused", "to come": "· to come" };

  // A rollout as its steps (a staircase of traffic shares) with the gates' figures at each
  function rollout(r) {
    const steps = stepOutcomes(r);
    const slot = 96, width = 16 + slot * steps.length, height = 120, base = 86;
    const stairs = steps.map((s, i) => {
      const h = Math.max(3, (s.percent / 100) * 62), x = 12 + i * slot;
      return `<g class="step ${s.state.replace(" ", "-")}"><title>${esc(`step ${i + 1}: ${s.percent}% of traffic, ${s.state}`)}</title>
        <rect x="${x}" y="${base - h}" width="${slot - 16}" height="${h}"/>
        <text class="pct" x="${x + (slot - 16) / 2}" y="${base - h - 4}" text-anchor="middle">${esc(s.percent)}%</text>
        <text class="state" x="${x + (slot - 16) / 2}" y="${base + 16}" text-anchor="middle">${esc(SYMBOL[s.state])}</text></g>`;
    }).join("");
    const title = `Rollout of ${r.version}: ${r.state}, ${steps.map((s) => `${s.percent}% ${s.state}`).join(", ")}`;
    const svg = frame("steps", width, height, title, "Each step's share of traffic and what became of it; the table below gives every gate's figures at each step.", stairs);
    const gates = [...new Set(steps.flatMap((s) => (s.judgement && s.judgement.gates ? s.judgement.gates.map((g) => g.gate) : [])))];
    const cell = (s, gate) => {
      const g = s.judgement && s.judgement.gates ? s.judgement.gates.find((x) => x.gate === gate) : null;
      if (!g) return "<td>—</td>";
      const verdict = g.passed === true ? "✓ pass" : g.passed === false ? "✗ FAIL" : "not judged";
      return `<td class="${g.passed === false ? "bad" : ""}" title="${esc(g.note)}">${verdict}<br>${num(g.value)} (limit ${esc(g.limit)})</td>`;
    };
    const table = gates.length ? `<table class="gates"><caption>Gates at each step</caption><thead><tr><th scope="col">gate</th>
      ${steps.map((s) => `<th scope="col">${esc(s.percent)}% (${esc(s.state)})</th>`).join("")}</tr></thead><tbody>
      ${gates.map((gate) => `<tr><th scope="row">${esc(gate)}</th>${steps.map((s) => cell(s, gate)).join("")}</tr>`).join("")}
      <tr><th scope="row">canary requests</th>${steps.map((s) => `<td>${s.judgement && s.judgement.canary ? esc(s.judgement.canary.requests) : "—"}</td>`).join("")}</tr></tbody></table>`
      : "<p class=\"hint\">No step judged yet.</p>";
    return `<figure class="rollout-chart" data-key="rollout"><figcaption>${esc(title)}</figcaption>${svg}</figure>${table}`;
  }

  return { distribution, line, rollout, stepOutcomes, bins, esc };
})();
