// Switchyard's operator console: one page, hash-routed, reading the admin API the CLI uses.
// The admin token (when the gateway has one) lives in sessionStorage for this tab, never in a URL.
"use strict";

const state = { token: sessionStorage.getItem("switchyard.token") || "", operator: sessionStorage.getItem("switchyard.operator") || "", timer: null };
const main = document.getElementById("main");

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(c === undefined || c === null ? "" : String(c)));
  return e;
}

class Unauthorized extends Error {}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) throw new Unauthorized();
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const err = new Error((data && data.error) || r.status + " " + r.statusText);
    err.body = data;
    throw err;
  }
  return data;
}

function login(message) {
  clearInterval(state.timer);
  main.replaceChildren(document.getElementById("login").content.cloneNode(true));
  document.getElementById("operator").value = state.operator;
  if (message) document.getElementById("login-error").textContent = message;
  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = document.getElementById("token").value;
    state.operator = document.getElementById("operator").value;
    sessionStorage.setItem("switchyard.token", state.token);
    sessionStorage.setItem("switchyard.operator", state.operator);
    route();
  });
  document.getElementById("token").focus();
}

function actor() {
  return "console:" + (state.operator || "operator");
}

const pct = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%");
const ms = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(1) + " ms");

function sparkline(values, label, series) {
  const w = 90, h = 22, max = Math.max(1e-9, ...values);
  const pts = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * w},${h - (v / max) * h}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark"); svg.setAttribute("width", w); svg.setAttribute("height", h);
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", label);
  if (series) svg.dataset.series = series;
  svg.dataset.values = values.map((v) => Number(v).toPrecision(4)).join(" ");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts); line.setAttribute("fill", "none"); line.setAttribute("stroke", "#0a58ca");
  svg.append(line);
  return svg;
}

function origin(o) {
  if (!o || o.kind === "config") return "as configured";
  if (o.kind === "guard_trip") return `guard trip at ${o.at}: ${(o.detail && o.detail.reason_text) || ""}`;
  return `${o.action} by ${o.actor} at ${o.at}`;
}

function routingCells(r) {
  const ch = r.challengers.map((c) => `v${c.version} ${c.weight_percent}%`).join(", ") || "none";
  const sh = r.shadows.map((c) => `v${c.version} ${c.percent}%`).join(", ") || "none";
  return [
    el("td", {}, `v${r.champion} (${r.champion_weight_percent}%)`, r.champion_route === "backup" ? el("span", { class: "bad" }, " backup serving") : ""),
    el("td", { "data-test": "challengers" }, ch),
    el("td", {}, sh),
    el("td", {}, r.backup.map((b) => "v" + b).join(", ") || "none"),
    el("td", {}, r.sticky_header || "–"),
  ];
}

async function modelsPage() {
  const models = await api("GET", "/admin/models");
  const rows = [];
  for (const m of models) {
    rows.push(el("tr", {}, el("td", {}, el("a", { href: "#/model/" + encodeURIComponent(m.name) }, m.name)), ...routingCells(m.routing), el("td", {}, origin(m.origin))));
  }
  const versions = [];
  for (const m of models) {
    for (const v of m.versions) {
      const key = `${m.name} v${v.version}`;
      // The gateway's own recent window, one point per tenth of it (oldest first).
      const series = v.series || [];
      const last = series.length ? series[series.length - 1] : null;
      const trend = (field, what, fmt) => el("td", { class: "trend" },
        sparkline(series.map((p) => p[field]), `${what} of ${key} over the recent window`, field), " ",
        el("span", { class: "num" }, last ? fmt(last[field]) : "–"));
      const errors = series.map((p) => (p.requests ? p.errors / p.requests : 0));
      versions.push(el("tr", {},
        el("td", {}, key), el("td", {}, v.state), el("td", {}, v.stage || "–"),
        el("td", { class: "num" }, v.recent ? v.recent.requests : "–"),
        trend("requests_per_s", "requests per second", (x) => x.toFixed(1) + "/s"),
        trend("p50_ms", "median latency", ms),
        trend("p99_ms", "99th percentile latency", ms),
        el("td", { class: "trend" + (v.recent && v.recent.error_rate > 0 ? " bad" : "") },
          sparkline(errors, `error rate of ${key} over the recent window`, "error_rate"), " ", v.recent ? pct(v.recent.error_rate) : "–"),
        el("td", {}, v.ejected ? el("span", { class: "bad" }, "ejected") : "")));
    }
  }
  main.replaceChildren(
    el("h2", {}, "Models"),
    el("table", { "aria-label": "Routing of every model" },
      el("thead", {}, el("tr", {}, ["Model", "Champion", "Challengers", "Shadows", "Backups", "Sticky header", "Why"].map((t) => el("th", { scope: "col" }, t)))),
      el("tbody", {}, rows)),
    el("h2", {}, "Versions, over their recent window"),
    el("table", { "aria-label": "Recent figures of every version" },
      el("thead", {}, el("tr", {}, ["Version", "State", "Stage", "Requests", "Requests/s", "p50", "p99", "Errors", ""].map((t) => el("th", { scope: "col" }, t)))),
      el("tbody", {}, versions)),
    el("p", { class: "muted" }, "Trends: each version's recent window (the guard's), one point per tenth of it; refreshed every 2 s."));
}

async function modelPage(name) {
  const [m, registry, events] = await Promise.all([
    api("GET", "/admin/models/" + encodeURIComponent(name)),
    api("GET", "/admin/registry/models/" + encodeURIComponent(name)),
    api("GET", "/admin/registry/models/" + encodeURIComponent(name) + "/events"),
  ]);
  const g = m.guard;
  const versions = registry.map((v) => {
    const live = m.versions.find((x) => x.version === v.version);
    const recent = live && live.recent;
    const breach = g && recent && ((g.p99_ms && recent.p99_ms > g.p99_ms) || (g.max_error_rate !== null && recent.error_rate > g.max_error_rate));
    return el("tr", {}, el("td", {}, "v" + v.version), el("td", {}, v.stage), el("td", {}, v.aliases.join(", ") || "–"),
      el("td", {}, el("code", {}, v.sha256.slice(0, 12) + "…")),
      el("td", {}, live ? live.state : "not loaded", live && live.upstream_health
        ? el("span", { class: live.upstream_health.ejected ? "bad" : "muted" },
            ` remote: ${live.upstream_health.url}${live.upstream_health.ejected ? " (ejected)" : ""}`)
        : ""),
      el("td", { class: "num" + (breach ? " bad" : "") }, recent ? ms(recent.p99_ms) : "–"),
      el("td", { class: "num" }, recent ? pct(recent.error_rate) : "–"));
  });
  const timeline = events.slice().reverse().slice(0, 50).map((e) =>
    el("tr", {}, el("td", {}, e.at), el("td", {}, e.kind), el("td", {}, e.version ? "v" + e.version : "–"), el("td", {}, e.actor),
      el("td", {}, el("code", {}, (e.detail && (e.detail.reason_text || (e.detail.from !== undefined ? `${JSON.stringify(e.detail.from)} → ${JSON.stringify(e.detail.to)}` : ""))) || ""))));
  const result = el("div", { id: "action-result", role: "status", "aria-live": "polite" });
  const versionSelect = (id) => el("select", { id }, m.versions.filter((v) => v.state === "ready").map((v) => el("option", { value: v.version }, "v" + v.version)));
  const act = async (what, fn) => {
    result.replaceChildren(el("p", {}, what + "…"));
    try { const r = await fn(); result.replaceChildren(el("p", { class: "good" }, what + ": done."), el("pre", {}, JSON.stringify(r.routing || r, null, 2))); }
    catch (e) { if (e instanceof Unauthorized) return login("Your token was refused."); result.replaceChildren(el("p", { role: "alert" }, what + " refused: " + e.message)); }
  };
  const promoteForm = el("form", { class: "inline", id: "promote-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const v = Number(document.getElementById("promote-version").value);
    const gates = await api("GET", `/admin/models/${encodeURIComponent(name)}/gates/${v}`);
    const table = el("table", { "aria-label": "Promotion gates" }, el("tbody", {}, gates.gates.map((x) =>
      el("tr", {}, el("td", { class: x.passed ? "good" : "bad" }, x.passed ? "PASS" : "FAIL"), el("td", {}, x.gate), el("td", {}, x.required), el("td", {}, x.measured)))));
    const force = !gates.passed;
    result.replaceChildren(el("h3", {}, `Gates for v${v}`), gates.gates.length ? table : el("p", {}, "No promotion policy: no gates."),
      el("p", {}, force ? "Some gates fail: promoting anyway is recorded as forced, with your name." : "Every gate passes."),
      el("button", { id: "confirm-promote", type: "button", onclick: () => {
        // Read before the result area is replaced (the checkbox lives in it).
        const forced = document.getElementById("force").checked;
        act(`Promote v${v}`, () => api("POST", `/admin/models/${encodeURIComponent(name)}/promote`, { version: v, actor: actor(), force: forced }));
      } }, `Confirm promotion of v${v}`),
      el("label", {}, el("input", { type: "checkbox", id: "force" }), " force (recorded)"));
  } }, el("label", { for: "promote-version" }, "Promote"), versionSelect("promote-version"), el("button", { type: "submit" }, "Check gates"));
  const confirmThen = (what, fn) => () => { if (confirm(`${what}? It is recorded as ${actor()}.`)) act(what, fn); };
  main.replaceChildren(
    el("h2", {}, `Model ${m.name}`),
    el("div", { class: "card" }, el("p", {}, "Routing: ", origin(m.origin)),
      el("table", {}, el("thead", {}, el("tr", {}, ["Champion", "Challengers", "Shadows", "Backups", "Sticky header"].map((t) => el("th", {}, t)))), el("tbody", {}, el("tr", {}, routingCells(m.routing))))),
    g ? el("p", {}, `Guard: p99 ≤ ${g.p99_ms ?? "–"} ms, error rate ≤ ${g.max_error_rate ?? "–"} over ${g.window_ms / 1000} s (at least ${g.min_requests} requests).`) : el("p", { class: "muted" }, "No guard."),
    m.guard_alarm ? el("p", { role: "alert" }, "ALARM: the champion breaches and no backup is healthy.") : "",
    el("h3", {}, "Versions"),
    el("table", { "aria-label": "Versions" }, el("thead", {}, el("tr", {}, ["Version", "Stage", "Aliases", "sha256", "Serving", "p99", "Errors"].map((t) => el("th", {}, t)))), el("tbody", {}, versions)),
    el("h3", {}, "Actions"),
    el("div", { class: "card" }, promoteForm,
      el("p", {}, el("button", { type: "button", class: "secondary", onclick: confirmThen("Roll back", () => api("POST", `/admin/models/${encodeURIComponent(name)}/rollback`, { actor: actor() })) }, "Roll back"), " ",
        el("button", { type: "button", class: "secondary", onclick: confirmThen("Reset to the configured routing", () => api("POST", `/admin/models/${encodeURIComponent(name)}/reset`, { actor: actor() })) }, "Reset"), " ",
        el("button", { type: "button", class: "secondary", onclick: confirmThen("Reload the config", () => api("POST", "/admin/reload", { actor: actor() })) }, "Reload config")),
      result),
    el("h3", {}, "Timeline"),
    el("table", { "aria-label": "Events", id: "timeline" }, el("thead", {}, el("tr", {}, ["At", "Event", "Version", "By", "Detail"].map((t) => el("th", {}, t)))), el("tbody", {}, timeline)));
}

function lineagePage(id) {
  const out = el("div", { id: "lineage-result", "aria-live": "polite" });
  const form = el("form", { onsubmit: async (ev) => {
    ev.preventDefault();
    const rid = document.getElementById("request-id").value.trim();
    location.hash = "#/lineage/" + encodeURIComponent(rid);
  } }, el("label", { for: "request-id" }, "Request id"), el("input", { id: "request-id", value: id || "", required: "" }), " ", el("button", { type: "submit" }, "Look up"));
  main.replaceChildren(el("h2", {}, "Lineage"), form, out);
  if (!id) return;
  api("GET", "/admin/lineage/" + encodeURIComponent(id)).then((chain) => {
    const rec = chain.records.map((r) => el("tr", {}, el("td", {}, r.at), el("td", {}, `${r.model} v${r.version}`), el("td", {}, r.route), el("td", {}, r.reason), el("td", { class: "num" }, r.status), el("td", { class: "num" }, (r.total_us / 1000).toFixed(3) + " ms")));
    const t = (chain.provenance && chain.provenance.training) || {};
    out.replaceChildren(
      el("table", { "aria-label": "Records" }, el("thead", {}, el("tr", {}, ["At", "Version", "Route", "Why", "Status", "Total"].map((x) => el("th", {}, x)))), el("tbody", {}, rec)),
      el("p", {}, "Artifact sha256: ", el("code", {}, chain.records[0].sha256)),
      el("p", {}, "Training: code ", el("code", {}, t.code_commit || "–"), ", data ", el("code", {}, t.data_snapshot || "–")),
      el("details", {}, el("summary", {}, "The whole chain (JSON)"), el("pre", {}, JSON.stringify(chain, null, 2))));
  }).catch((e) => { if (e instanceof Unauthorized) return login(); out.replaceChildren(el("p", { role: "alert" }, e.message)); });
}

function diffPage() {
  const out = el("div", { id: "diff-result" });
  main.replaceChildren(el("h2", {}, "Compare two versions"),
    el("form", { class: "inline", onsubmit: async (ev) => {
      ev.preventDefault();
      const [m, a, b] = ["diff-model", "diff-a", "diff-b"].map((x) => document.getElementById(x).value.trim());
      try {
        const d = await api("GET", `/admin/models/${encodeURIComponent(m)}/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
        out.replaceChildren(
          el("table", { "aria-label": "Provenance" }, el("thead", {}, el("tr", {}, ["", "Field", "A", "B"].map((x) => el("th", {}, x)))),
            el("tbody", {}, d.provenance.map((f) => el("tr", {}, el("td", { class: f.differs ? "bad" : "" }, f.differs ? "≠" : ""), el("td", {}, f.field), el("td", {}, JSON.stringify(f.a)), el("td", {}, JSON.stringify(f.b)))))),
          el("p", {}, d.signature.compatible ? "B can replace A for A's callers." : "B cannot replace A: " + d.signature.problems.join("; ")));
      } catch (e) { out.replaceChildren(el("p", { role: "alert" }, e.message)); }
    } }, el("label", { for: "diff-model" }, "Model"), el("input", { id: "diff-model", required: "" }),
      el("label", { for: "diff-a" }, "A"), el("input", { id: "diff-a", size: 8, required: "" }),
      el("label", { for: "diff-b" }, "B"), el("input", { id: "diff-b", size: 8, required: "" }), " ", el("button", { type: "submit" }, "Compare")),
    out);
}

async function route() {
  clearInterval(state.timer);
  document.getElementById("who").textContent = state.operator ? "Signed in as " + state.operator : "";
  const [, page, arg] = (location.hash || "#/models").split("/");
  try {
    if (page === "model" && arg) {
      await modelPage(decodeURIComponent(arg));
      // Live, but never under the operator's hands: not while an action is being prepared or shown.
      state.timer = setInterval(() => {
        const busy = document.getElementById("action-result")?.childElementCount > 0 || document.activeElement?.closest("form");
        if (!busy) modelPage(decodeURIComponent(arg)).catch(() => {});
      }, 3000);
    }
    else if (page === "lineage") lineagePage(arg ? decodeURIComponent(arg) : "");
    else if (page === "diff") diffPage();
    else { await modelsPage(); state.timer = setInterval(() => modelsPage().catch(() => {}), 2000); }
  } catch (e) {
    if (e instanceof Unauthorized) login(state.token ? "That token was refused." : "");
    else main.replaceChildren(el("p", { role: "alert" }, e.message));
  }
}

window.addEventListener("hashchange", route);
// Ask first whether a token is needed, so a browser without one sees the sign-in form rather
// than a refused request.
fetch("/ui/auth").then((r) => r.json()).then((auth) => {
  if (auth.token_required && !state.token) login();
  else route();
}).catch(() => route());
