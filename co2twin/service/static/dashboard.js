// co2twin service dashboard: the queue, a form to enqueue, live plots, KPIs.
// Plain DOM and SVG; every value from the server is set as text, never as HTML.
"use strict";

const KEY_PLOTS = [
  ["power.current", "current [A]"],
  ["reactor.cell_voltage", "cell voltage [V]"],
  ["reactor.fe_formate", "FE formate [1]"],
  ["reactor.formate_production", "formate [g/h]"],
  ["reactor.current_density", "current density [mA/cm2]"],
  ["reactor.anolyte_ph", "anolyte pH"],
  ["reactor.cell_temperature", "cell temperature [degC]"],
  ["reactor.outlet_co2_fraction", "outlet CO2 [%]"],
];

const state = { selected: null, series: {}, lastTime: null, limits: {}, status: null, token: sessionStorage.getItem("co2twin-token") || "" };

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = String(text);
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    document.getElementById("token-box").hidden = false;
    throw new Error("the service needs its API token");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = new Error((body.problems || [response.statusText]).join("; "));
    err.problems = body.problems || [response.statusText];
    throw err;
  }
  return body;
}

// -- health, base experiments -------------------------------------------------------------
async function loadHealth() {
  try {
    const h = await api("/api/health");
    document.getElementById("health").textContent = `${h.database} · schema ${h.revision} · ` +
      Object.entries(h.experiments).map(([k, v]) => `${v} ${k}`).join(", ");
  } catch (e) { document.getElementById("health").textContent = "unreachable: " + e.message; }
}

async function loadBase() {
  const select = document.getElementById("base");
  try {
    for (const b of await api("/api/base-experiments")) {
      const label = `${b.id}: ${b.name || "base experiment"}` + (b.electrode ? ` (${b.electrode})` : "");
      select.appendChild(el("option", { value: String(b.id) }, label));
    }
  } catch (e) { /* shown by the queue's error line */ }
}

// -- the form -------------------------------------------------------------------------------
async function submitForm(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  const problems = document.getElementById("problems");
  problems.replaceChildren();
  const request = { name: data.get("name") || "experiment" };
  const yaml = (data.get("scenario_yaml") || "").trim();
  if (yaml) {
    request.scenario_yaml = yaml;
  } else {
    const overrides = {};
    for (const key of ["current", "gas_flow", "co2_fraction", "humidity", "duration"]) {
      const v = data.get(key);
      if (v !== null && v !== "") overrides[key] = Number(v);
    }
    const every = data.get("record_every");
    if (every) overrides.record_every = Number(every);
    request.overrides = overrides;
    if (data.get("base_experiment")) request.base_experiment = Number(data.get("base_experiment"));
  }
  if (data.get("pace")) request.pace = data.get("pace");
  try {
    const job = await api("/api/experiments", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
    problems.appendChild(el("li", { class: "muted" }, `queued as experiment ${job.id}`));
    await loadQueue();
    select(job.id);
  } catch (e) {
    for (const p of e.problems || [e.message]) problems.appendChild(el("li", {}, p));
  }
}

// -- the queue ------------------------------------------------------------------------------
async function loadQueue() {
  let rows;
  try { rows = await api("/api/experiments?limit=50"); } catch (e) { return; }
  const body = document.querySelector("#queue tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr", { "data-id": String(r.id) });
    if (r.id === state.selected) tr.classList.add("selected");
    tr.appendChild(el("td", {}, r.id));
    tr.appendChild(el("td", {}, r.name));
    tr.appendChild(el("td", { class: "status-" + r.status }, r.status));
    const bar = el("span", { class: "bar", title: `${Math.round(100 * r.progress)} %` });
    const fill = el("span"); fill.style.width = `${Math.round(100 * r.progress)}%`; bar.appendChild(fill);
    const td = el("td"); td.appendChild(bar); tr.appendChild(td);
    tr.appendChild(el("td", {}, r.rows_written));
    tr.appendChild(el("td", { title: r.submitted_at || "" }, (r.submitted_at || "").slice(11, 19)));
    tr.addEventListener("click", () => select(r.id));
    body.appendChild(tr);
  }
}

// -- the selected experiment: live plots and KPIs ----------------------------------------------
function select(id) {
  state.selected = id; state.series = {}; state.lastTime = null; state.limits = {}; state.status = null;
  document.getElementById("kpis").hidden = true;
  document.getElementById("kpi-title").hidden = true;
  document.querySelectorAll("#queue tbody tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.id === String(id)));
  refreshSelected();
}

async function refreshSelected() {
  const id = state.selected;
  if (id === null) return;
  let info;
  try { info = await api(`/api/experiments/${id}`); } catch (e) { return; }
  if (id !== state.selected) return;
  state.limits = info.limits || {};
  state.status = info.status;
  document.getElementById("selected-title").textContent = `Experiment ${info.id}: ${info.name}`;
  const status = `${info.status} · ${Math.round(100 * info.progress)} % · ${info.rows_written} rows` + (info.error ? ` · ${info.error}` : "");
  document.getElementById("selected-status").textContent = status;
  if (info.rows_written > 0) {
    const since = state.lastTime === null ? "" : `&since=${state.lastTime}`;
    try {
      const res = await api(`/api/experiments/${id}/results?format=json${since}`);
      if (id !== state.selected) return;
      for (const [name, values] of Object.entries(res.signals)) {
        const s = state.series[name] || (state.series[name] = { t: [], y: [] });
        s.t.push(...res.time_s); s.y.push(...values);
      }
      if (res.time_s.length) state.lastTime = res.time_s[res.time_s.length - 1];
    } catch (e) { /* next poll */ }
  }
  drawPlots();
  if (info.status === "done") showKpis(info.kpis || {});
}

function drawPlots() {
  const box = document.getElementById("plots");
  box.replaceChildren();
  for (const [name, label] of KEY_PLOTS) {
    const s = state.series[name];
    if (!s || !s.t.length) continue;
    const div = el("div", { class: "plot", "data-signal": name });
    div.appendChild(el("h4", {}, label));
    div.appendChild(chart(s.t, s.y, state.limits[name] || [null, null]));
    box.appendChild(div);
  }
}

function chart(t, y, limits) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 320, H = 150, L = 42, R = 6, T = 6, B = 18;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const finite = y.filter((v) => v !== null && Number.isFinite(v));
  let lo = Math.min(...finite), hi = Math.max(...finite);
  for (const lim of limits) if (lim !== null && Number.isFinite(lim)) { lo = Math.min(lo, lim); hi = Math.max(hi, lim); }
  if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
  const t0 = t[0], t1 = t[t.length - 1] > t0 ? t[t.length - 1] : t0 + 1;
  const x = (v) => L + (W - L - R) * (v - t0) / (t1 - t0);
  const yy = (v) => H - B - (H - T - B) * (v - lo) / (hi - lo);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    svg.appendChild(n); return n;
  };
  add("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B });
  add("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B });
  add("text", { x: 2, y: T + 8 }, fmt(hi));
  add("text", { x: 2, y: H - B }, fmt(lo));
  add("text", { x: L, y: H - 4 }, `${fmt(t0)} s`);
  add("text", { x: W - R - 40, y: H - 4 }, `${fmt(t1)} s`);
  for (const lim of limits) {
    if (lim === null || !Number.isFinite(lim)) continue;
    add("line", { class: "limit", x1: L, x2: W - R, y1: yy(lim), y2: yy(lim) });
  }
  const points = [];
  for (let i = 0; i < t.length; i++) if (y[i] !== null && Number.isFinite(y[i])) points.push(`${x(t[i]).toFixed(1)},${yy(y[i]).toFixed(1)}`);
  add("polyline", { class: "line", points: points.join(" "), "data-points": points.length });
  return svg;
}

function fmt(v) { return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : Number(v.toPrecision(4)).toString(); }

function showKpis(kpis) {
  const body = document.querySelector("#kpis tbody");
  body.replaceChildren();
  for (const [k, v] of Object.entries(kpis)) {
    if (v !== null && typeof v === "object") continue;
    const tr = el("tr");
    tr.appendChild(el("td", {}, k));
    tr.appendChild(el("td", {}, typeof v === "number" ? fmt(v) : String(v)));
    body.appendChild(tr);
  }
  document.getElementById("kpis").hidden = false;
  document.getElementById("kpi-title").hidden = false;
}

// -- start ----------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  const token = document.getElementById("token");
  token.value = state.token;
  token.addEventListener("change", () => { state.token = token.value; sessionStorage.setItem("co2twin-token", token.value); loadBase(); loadQueue(); });
  document.getElementById("enqueue").addEventListener("submit", submitForm);
  loadHealth(); loadBase(); loadQueue();
  setInterval(loadQueue, 1500);
  setInterval(loadHealth, 5000);
  setInterval(() => { if (state.selected !== null && state.status !== "done" && state.status !== "failed" && state.status !== "cancelled") refreshSelected(); }, 1000);
});
