// hookflash NOC dashboard: plain JS, no build step. Polls the read API every refresh_s
// (from /dashboard.json, or ?refresh=S) and updates the page in place. Everything the API
// returns is inserted as text, never as HTML. Lists are paginated by the server.
"use strict";

const PAGE = 10;
const STATES = ["on_target", "ahead", "pending", "failed", "regressed", "straggler"];
const COLORS = ["#4aa3df", "#3fb97a", "#e0a93b", "#b07cd8", "#e5645c", "#62c4c3", "#c9c36a", "#8a9ba8"];
const state = {
  settings: { refresh_s: 5 },
  token: "",  // a read token, asked for once per page load and kept in memory only
  offsets: { offline: 0, quality: 0, unregistered: 0 },
  rollout: { model: "", target: "", busy: false },
  firmware: [],
  ticks: 0,
};

const $ = (selector) => document.querySelector(selector);

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fill(tbody, rows, columns, empty) {
  tbody.replaceChildren(...(rows.length ? rows : [emptyRow(columns, empty)]));
}

function emptyRow(columns, text) {
  const tr = el("tr");
  tr.appendChild(el("td", text, { colspan: String(columns), class: "empty" }));
  return tr;
}

function deviceLink(id) {
  const a = el("a", id, { class: "device", "data-device": id, href: "#" });
  a.addEventListener("click", (event) => { event.preventDefault(); showDevice(id); });
  return a;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

const fmt = (value, digits = 2) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

class Unauthorized extends Error {}

async function api(path) {
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${detail}`);
  }
  return response.json();
}

function pager(name, page, refresh) {
  const box = document.querySelector(`.pager[data-list="${name}"]`);
  const first = page.total ? page.offset + 1 : 0;
  const last = Math.min(page.offset + page.items.length, page.total);
  const prev = el("button", "‹ prev", { type: "button" });
  const next = el("button", "next ›", { type: "button" });
  prev.disabled = page.offset === 0;
  next.disabled = page.offset + page.limit >= page.total;
  prev.addEventListener("click", () => { state.offsets[name] = Math.max(0, page.offset - PAGE); refresh(); });
  next.addEventListener("click", () => { state.offsets[name] = page.offset + PAGE; refresh(); });
  box.replaceChildren(el("span", `${first}–${last} of ${page.total}`, { "data-total": String(page.total) }), prev, next);
}

function renderSummary(summary, alerts) {
  for (const node of document.querySelectorAll("[data-stat]")) {
    const key = node.dataset.stat;
    node.textContent = key === "alerts" ? String(alerts.length) : String(summary[key]);
  }
}

async function loadOffline() {
  const page = await api(`/v1/fleet/offline?limit=${PAGE}&offset=${state.offsets.offline}`);
  fill($("#offline-table tbody"),
    page.items.map((d) => row([deviceLink(d.device_id), d.model, ago(d.last_seen), d.reason])), 4, "none offline");
  pager("offline", page, loadOffline);
}

async function loadQuality() {
  const page = await api(`/v1/fleet/poor-quality?limit=${PAGE}&offset=${state.offsets.quality}`);
  fill($("#quality-table tbody"),
    page.items.map((d) => row([deviceLink(d.device_id), d.model, d.firmware, fmt(d.mos), fmt(d.loss_pct),
      fmt(d.jitter_ms, 0)])), 6, "no poor call quality");
  pager("quality", page, loadQuality);
}

async function loadUnregistered() {
  const page = await api(`/v1/fleet/unregistered?limit=${PAGE}&offset=${state.offsets.unregistered}`);
  fill($("#unregistered-table tbody"),
    page.items.map((d) => row([deviceLink(d.device_id), d.model,
      Object.entries(d.lines).map(([k, v]) => `${k}=${v}`).join(" "), ago(d.reported_at)])), 4, "all registered");
  pager("unregistered", page, loadUnregistered);
}

function renderAlerts(alerts) {
  fill($("#alerts-table tbody"),
    alerts.map((a) => row([a.rule, deviceLink(a.device_id), ago(a.since), describe(a.detail)])),
    4, state.settings.alerts ? "no alert firing" : "alerts are not enabled");
}

function describe(detail) {
  return Object.entries(detail)
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(", ");
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function renderFirmware(models) {
  state.firmware = models;
  const chart = $("#firmware-chart");
  const versions = [...new Set(models.flatMap((m) => m.versions.map((v) => v.version)))];
  const color = (version) => version === "unknown" ? "#3a4650" : COLORS[versions.indexOf(version) % COLORS.length];
  const rows = models.map((m) => {
    const line = el("div", null, { class: "row", "data-model": m.model });
    const track = el("div", null, { class: "track" });
    for (const v of m.versions) {
      const bar = el("div", null, {
        class: "fw-bar", "data-model": m.model, "data-version": v.version, "data-devices": String(v.devices),
        title: `${m.model} ${v.version}: ${v.devices} devices`,
      });
      bar.style.width = `${(100 * v.devices) / m.devices}%`;
      bar.style.background = color(v.version);
      track.appendChild(bar);
    }
    const legend = el("div", null, { class: "legend" });
    for (const v of m.versions) {
      const item = el("span");
      const swatch = el("i");
      swatch.style.background = color(v.version);
      item.append(swatch, `${v.version} (${v.devices})`);
      legend.appendChild(item);
    }
    line.append(el("b", m.model), track, el("span", plural(m.devices, "device"), { class: "muted" }), legend);
    return line;
  });
  chart.replaceChildren(...(rows.length ? rows : [el("div", "no devices", { class: "muted" })]));
  const select = $("#rollout-model");
  const models_ = models.map((m) => m.model);
  if ([...select.options].map((o) => o.value).join() !== models_.join()) {
    select.replaceChildren(...models_.map((m) => el("option", m, { value: m })));
    if (state.rollout.model && models_.includes(state.rollout.model)) select.value = state.rollout.model;
  }
  if (!state.rollout.model && models.length) chooseRollout(models[0].model);
}

function newestVersion(model) {
  const m = state.firmware.find((x) => x.model === model);
  const known = m ? m.versions.filter((v) => v.version !== "unknown") : [];
  return known.length ? known[0].version : "";
}

function chooseRollout(model, target) {
  state.rollout.model = model;
  state.rollout.target = target || newestVersion(model);
  $("#rollout-model").value = model;
  $("#rollout-target").value = state.rollout.target;
}

async function loadRollout() {
  const { model, target } = state.rollout;
  if (!model || !target || state.rollout.busy) return;
  state.rollout.busy = true;
  try {
    const r = await api(`/v1/rollouts/status?model=${encodeURIComponent(model)}&target=${encodeURIComponent(target)}`);
    const began = r.began ? `began ${new Date(r.began).toLocaleString()} (${r.began_from})` : "not begun: no device reports it";
    $("#rollout-summary").textContent = `${r.target} on ${r.model}: ${r.progress_pct}% of ${r.devices} devices, ${began}`;
    $("#rollout-summary").dataset.progress = String(r.progress_pct);
    const bar = $("#rollout-bar");
    bar.replaceChildren(...STATES.filter((s) => r.counts[s]).map((s) => {
      const part = el("span", null, { class: `s-${s}`, title: `${s}: ${r.counts[s]}` });
      part.style.width = `${(100 * r.counts[s]) / r.devices}%`;
      return part;
    }));
    const counts = el("tr");
    for (const s of STATES) {
      const td = el("td", null, { class: `s-${s}` });
      td.append(el("b", r.counts[s], { "data-rollout": s }), s.replace("_", " "));
      counts.appendChild(td);
    }
    $("#rollout-counts tbody").replaceChildren(counts);
    const cohorts = Object.entries(r.cohorts).map(([name, c]) => {
      const tr = row([name.replace("_", " "), c.devices, c.calls, fmt(c.mos), fmt(c.loss_pct), fmt(c.jitter_ms, 1),
        c.registration_rate === null ? "–" : `${(100 * c.registration_rate).toFixed(1)} %`]);
      tr.dataset.cohort = name;
      return tr;
    });
    const d = r.delta;
    if (d.mos !== null) {
      const delta = row(["after − before", "", "", signed(d.mos, -1), signed(d.loss_pct, 1), signed(d.jitter_ms, 1),
        d.registration_rate === null ? "–" : signed(100 * d.registration_rate, -1, " %")]);
      delta.dataset.cohort = "delta";
      cohorts.push(delta);
    }
    $("#cohorts tbody").replaceChildren(...cohorts);
    const listed = ["regressed", "failed", "straggler"].flatMap((s) => r.listed[s].slice(0, 5));
    fill($("#rollout-devices tbody"),
      listed.map((x) => row([x.state, deviceLink(x.device_id), x.version, x.reason])), 4, "no failed, regressed or straggling device");
  } finally {
    state.rollout.busy = false;
  }
}

function signed(value, badSign, unit = "") {
  const span = el("span", `${value > 0 ? "+" : ""}${value.toFixed(2)}${unit}`);
  if (value !== 0) span.className = Math.sign(value) === badSign ? "worse" : "better";
  return span;
}

async function showDevice(id) {
  const panel = $("#device-panel");
  try {
    const d = await api(`/v1/devices/${encodeURIComponent(id)}`);
    $("#device-title").textContent = `${d.device_id} · ${d.vendor} ${d.model}`;
    const body = $("#device-body");
    body.replaceChildren(el("p", `${d.online ? "online" : "offline"}, last seen ${ago(d.last_seen)} · account ${d.account_id} · ${d.transport} ${d.address}`));
    for (const r of d.latest) {
      body.append(el("h3", `${r.kind} · ${ago(r.observed_at)}`), el("pre", JSON.stringify(r.fields, null, 1)));
    }
    panel.hidden = false;
  } catch (error) {
    report(error);
  }
}

function report(error) {
  if (error instanceof Unauthorized) {
    $("#token-form").hidden = false;
    $("#status").textContent = "token needed";
  } else {
    $("#status").textContent = `error: ${error.message}`;
  }
}

async function refresh() {
  try {
    const [summary, alerts, firmware] = await Promise.all([
      api("/v1/fleet/summary"), api("/v1/alerts"), api("/v1/fleet/firmware"),
    ]);
    renderSummary(summary, alerts);
    renderAlerts(alerts);
    renderFirmware(firmware);
    await Promise.all([loadOffline(), loadQuality(), loadUnregistered(), loadRollout()]);
    state.ticks += 1;
    $("#token-form").hidden = true;
    const status = $("#status");
    status.textContent = `live · updated ${new Date().toLocaleTimeString()} · every ${state.settings.refresh_s} s`;
    status.dataset.ticks = String(state.ticks);
  } catch (error) {
    report(error);
  }
}

async function loop() {
  await refresh();
  setTimeout(loop, state.settings.refresh_s * 1000);
}

async function start() {
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);  // no token in URLs
  try {
    state.settings = await (await fetch("dashboard.json", { cache: "no-store" })).json();
  } catch (_) { /* keep defaults */ }
  const override = Number(new URLSearchParams(location.search).get("refresh"));
  if (override > 0) state.settings.refresh_s = override;
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("#token-input").value.trim();
    $("#token-input").value = "";
    refresh();
  });
  $("#rollout-form").addEventListener("submit", (event) => {
    event.preventDefault();
    chooseRollout($("#rollout-model").value, $("#rollout-target").value.trim());
    loadRollout().catch(report);
  });
  $("#rollout-model").addEventListener("change", () => chooseRollout($("#rollout-model").value));
  $("#device-close").addEventListener("click", () => { $("#device-panel").hidden = true; });
  const wanted = new URLSearchParams(location.search);
  if (wanted.get("model")) chooseRollout(wanted.get("model"), wanted.get("target") || "");
  loop();
}

start();
