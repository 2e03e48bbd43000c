// Edge Allocator dashboard: polls api/state and draws the cluster graph, the placements table
// and the model-card comparison. Plain DOM and SVG, no dependencies; data is only ever set
// through textContent/attributes (never parsed as HTML).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 3000;
let selected = null; // "namespace/name" of the highlighted placement
let lastState = null;

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function loadClass(node) {
  if (!node.ready) return "down";
  if (node.load > 0.8) return "high";
  if (node.load >= 0.5) return "mid";
  return "low";
}

function pct(x) { return Math.round(x * 100) + "%"; }

function fmtMs(x) {
  if (x === null || x === undefined) return "–";
  return (Math.round(x * 10) / 10) + " ms";
}

function layout(state, width, height) {
  const cx = width / 2, cy = height / 2;
  const sites = state.sites.length ? state.sites : [...new Set(state.nodes.map(n => n.site))].map(name => ({ name }));
  const bySite = new Map(sites.map(s => [s.name, []]));
  for (const n of state.nodes) {
    if (!bySite.has(n.site)) bySite.set(n.site, []);
    bySite.get(n.site).push(n);
  }
  const names = [...bySite.keys()];
  const ring = names.length > 1 ? Math.min(width, height) / 2 - 95 : 0;
  const pos = new Map();
  names.forEach((name, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
    const members = bySite.get(name);
    const r = 34 + 9 * Math.sqrt(members.length);
    const site = { name, x: cx + ring * Math.cos(a), y: cy + ring * Math.sin(a), r, nodes: [] };
    members.forEach((n, j) => {
      const b = -Math.PI / 2 + (2 * Math.PI * j) / Math.max(members.length, 1);
      const inner = members.length === 1 ? 0 : r - 16;
      site.nodes.push({ node: n, x: site.x + inner * Math.cos(b), y: site.y + inner * Math.sin(b) });
    });
    pos.set(name, site);
  });
  return pos;
}

function drawGraph(state) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const pos = layout(state, 800, 560);
  const placement = state.placements.find(p => key(p) === selected);
  const candidates = new Set(placement ? placement.candidates.map(c => c.node) : []);
  state.links.forEach((link, i) => {
    const a = pos.get(link.a), b = pos.get(link.b);
    if (!a || !b) return;
    svg.append(el("svg:line", { class: "link", x1: a.x, y1: a.y, x2: b.x, y2: b.y, "data-link": link.a + "-" + link.b }));
    // Labels sit off-centre, alternating, so links that cross in the middle stay readable.
    const t = i % 2 ? 0.62 : 0.38;
    svg.append(el("svg:text", { class: "link-label", x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y) + 4, "text-anchor": "middle" },
      `${link.latencyMs} ms · ${link.bandwidthMbps} Mb/s`));
  });
  for (const site of pos.values()) {
    const g = el("svg:g", { "data-site": site.name });
    g.append(el("svg:circle", { class: "site-circle", cx: site.x, cy: site.y, r: site.r }));
    g.append(el("svg:text", { class: "site-label", x: site.x, y: site.y - site.r - 6, "text-anchor": "middle" }, site.name));
    for (const { node, x, y } of site.nodes) {
      const size = node.nodeClass === "server" ? 12 : node.nodeClass === "mid" ? 9 : 7;
      let cls = "node " + loadClass(node);
      if (placement && placement.node === node.name) cls += " selected";
      else if (candidates.has(node.name)) cls += " candidate";
      const c = el("svg:circle", { class: cls, cx: x, cy: y, r: size, "data-node": node.name, "data-load": node.load });
      c.append(el("svg:title", {},
        `${node.name} (${node.nodeClass}, ${node.site})\ncpu ${pct(node.cpuFraction)} · memory ${pct(node.memFraction)}` +
        `${node.measured ? " (measured)" : " (requested)"}\n${node.runningTasks} running tasks${node.ready ? "" : "\nNOT READY"}`));
      g.append(c);
      if (node.runningTasks > 0 && size >= 9) {
        g.append(el("svg:text", { class: "node-count", x, y: y + 3 }, node.runningTasks));
      }
    }
    svg.append(g);
  }
  const ready = state.nodes.filter(n => n.ready).length;
  document.getElementById("cluster-summary").textContent =
    `${state.nodes.length} nodes (${ready} ready) · ${pos.size} sites · ${state.links.length} links`;
}

function key(p) { return p.namespace + "/" + p.name; }

function drawPlacements(state) {
  const tbody = document.querySelector("#placements tbody");
  tbody.replaceChildren();
  document.getElementById("placement-count").textContent =
    state.placementCount > state.placements.length ? `(newest ${state.placements.length} of ${state.placementCount})` : `(${state.placementCount})`;
  if (!state.placements.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 9, class: "muted" }, "No EdgeTasks yet: kubectl apply -f examples/"));
    tbody.append(tr);
    return;
  }
  for (const p of state.placements) {
    const tr = el("tr", { "data-task": key(p), class: key(p) === selected ? "selected" : null });
    tr.addEventListener("click", () => { selected = key(p); render(lastState); });
    tr.append(el("td", {}, key(p)));
    const phase = el("td");
    phase.append(el("span", { class: "phase " + p.phase }, p.phase));
    tr.append(phase);
    tr.append(el("td", { "data-testid": "placement-node" }, p.node || "–"));
    tr.append(el("td", {}, p.site || "–"));
    tr.append(el("td", {}, p.dataSourceSite || "–"));
    const over = p.latencyBudgetMs !== null && p.latencyBudgetMs !== undefined &&
      p.networkLatencyMs !== null && p.networkLatencyMs !== undefined && p.networkLatencyMs > p.latencyBudgetMs;
    tr.append(el("td", { class: over ? "over" : null },
      `${fmtMs(p.networkLatencyMs)} / ${p.latencyBudgetMs === null || p.latencyBudgetMs === undefined ? "none" : p.latencyBudgetMs + " ms"}`));
    tr.append(el("td", {}, p.score === null || p.score === undefined ? "–" : `${p.score}/10 (rank ${p.rank})`));
    tr.append(el("td", {}, p.policy ? `${p.policy}${p.modelVersion ? " " + p.modelVersion : ""}` : (p.reason || "–")));
    const cands = el("td");
    const grid = el("div", { class: "cands", "data-testid": "candidates" });
    for (const c of p.candidates.slice(0, 5)) {
      grid.append(el("span", {}, c.node));
      const bar = el("div", { class: "bar" });
      bar.append(el("i", { style: null }));
      bar.firstChild.style.width = Math.max(0, Math.min(10, c.score || 0)) * 10 + "%";
      grid.append(bar);
      grid.append(el("span", {}, c.score));
    }
    if (!p.candidates.length) grid.append(el("span", { class: "muted" }, "no record"));
    cands.append(grid);
    tr.append(cands);
    tbody.append(tr);
  }
}

function drawShadow(state) {
  const box = document.getElementById("shadow");
  const s = state.shadow;
  box.hidden = !s;
  if (!s) return;
  const parts = [`shadow: ${s.name} (${s.policy} ${s.version})`, `${s.scored} decisions`];
  if (s.agreement !== null) parts.push(`same node ${Math.round(s.agreement * 100)}%`);
  if (s.meanRankCorrelation !== null) parts.push(`rank correlation ${s.meanRankCorrelation.toFixed(2)}`);
  if (s.meanPredictedGainS !== null) {
    const g = s.meanPredictedGainS;
    parts.push(`predicted gain ${g >= 0 ? "+" : ""}${(g * 1000).toFixed(1)} ms per task`);
  }
  if (s.dropped) parts.push(`${s.dropped} skipped under load`);
  box.textContent = parts.join(" · ");
}

function drawModel(state) {
  const box = document.getElementById("model");
  const chart = document.getElementById("model-chart");
  chart.replaceChildren();
  const m = state.model;
  if (!m) { box.textContent = "unknown"; return; }
  box.replaceChildren();
  box.append(el("strong", {}, m.name));
  box.append(document.createTextNode(` — ${m.policy} ${m.version}`));
  if (!m.comparison.length) {
    box.append(el("div", { class: "muted" }, m.card ? `model card unreadable: ${m.card}` : "no model card with an evaluation for this model"));
    return;
  }
  box.append(el("div", { class: "muted" }, `${m.metric}; ${m.split} scenarios, 95% CI (${m.card})`));
  const rows = m.comparison;
  const left = 130, right = 372, top = 8, rowH = Math.min(24, 200 / rows.length);  // room for labels both sides
  const max = Math.max(1.2, ...rows.map(r => r.relative + r.ci95));
  const x = v => left + (v / max) * (right - left);
  chart.setAttribute("viewBox", `0 0 420 ${top + rows.length * rowH + 24}`);
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const active = r.policy === m.name || r.policy === m.policy;
    chart.append(el("svg:text", { class: "chart-label", x: left - 6, y: y + rowH * 0.65, "text-anchor": "end" }, r.policy));
    chart.append(el("svg:rect", { class: "chart-bar" + (active ? " active" : ""), x: left, y: y + 2, width: Math.max(1, x(r.relative) - left), height: rowH - 6, "data-policy": r.policy }));
    chart.append(el("svg:line", { class: "chart-axis", x1: x(r.relative - r.ci95), x2: x(r.relative + r.ci95), y1: y + rowH / 2 - 1, y2: y + rowH / 2 - 1 }));
    chart.append(el("svg:text", { class: "chart-label", x: x(r.relative + r.ci95) + 4, y: y + rowH * 0.65 }, r.relative.toFixed(2)));
  });
  const bottom = top + rows.length * rowH;
  chart.append(el("svg:line", { class: "chart-ref", x1: x(1), x2: x(1), y1: top, y2: bottom }));
  chart.append(el("svg:text", { class: "chart-label", x: x(1), y: bottom + 14, "text-anchor": "middle" }, "kube-default = 1.0"));
}

function render(state) {
  if (!state) return;
  if (selected === null || !state.placements.some(p => key(p) === selected)) {
    const placed = state.placements.find(p => p.node);
    selected = placed ? key(placed) : null;
  }
  drawGraph(state);
  drawPlacements(state);
  drawModel(state);
  drawShadow(state);
  const status = document.getElementById("status");
  const problems = state.errors.length ? " · " + state.errors.join("; ") : "";
  status.textContent = (state.ready ? "live" : "waiting for the cluster snapshot") +
    ` · updated ${new Date().toLocaleTimeString()}` + problems;
  document.body.dataset.loaded = "true";
}

// When the extender has an admin token, api/state needs it. It is kept for this tab only
// (sessionStorage) and can be handed over in the URL fragment (#token=...), which browsers
// never send to the server.
const TOKEN_KEY = "edge-allocator-admin-token";
let timer = null;

function tokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function askForToken(message) {
  document.getElementById("token-form").hidden = false;
  document.getElementById("status").textContent = message;
}

async function poll() {
  clearTimeout(timer);
  try {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const resp = await fetch("api/state", { cache: "no-store", headers });
    if (resp.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(token ? "the admin token was refused" : "this dashboard needs the admin token");
      return; // wait for the form
    }
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    document.getElementById("token-form").hidden = true;
    lastState = await resp.json();
    render(lastState);
  } catch (err) {
    document.getElementById("status").textContent = `cannot reach the extender: ${err.message}`;
  }
  timer = setTimeout(poll, POLL_MS);
}

document.getElementById("token-form").addEventListener("submit", event => {
  event.preventDefault();
  const input = document.getElementById("token");
  if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  poll();
});

tokenFromFragment();
poll();
