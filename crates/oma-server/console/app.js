// The oma console: a single-page app over the public API. No framework and no build step:
// the file is embedded in the binary as written. Every value from the API reaches the page
// through `textContent` (the `h` helper), never as HTML, so nothing a model or a user wrote
// can run here.

"use strict";

const API_VERSION = "2026-10-21";
// Managed Agents and memory stores have different betas; sending both is accepted everywhere.
const BETAS = "managed-agents-2026-04-01,agent-memory-2026-07-22";
const KEY = "oma.console.api_key";
const ADMIN_KEY = "oma.console.admin_key";

// ---------------------------------------------------------------------------------------
// Keys: in session storage (gone when the tab closes), sent as a header, never in a URL.
// ---------------------------------------------------------------------------------------

const keys = {
  get api() { return sessionStorage.getItem(KEY) || ""; },
  get admin() { return sessionStorage.getItem(ADMIN_KEY) || ""; },
  set(api, admin) {
    if (api) sessionStorage.setItem(KEY, api); else sessionStorage.removeItem(KEY);
    if (admin) sessionStorage.setItem(ADMIN_KEY, admin); else sessionStorage.removeItem(ADMIN_KEY);
  },
  clear() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(ADMIN_KEY); },
  get signedIn() { return Boolean(this.api || this.admin); },
};

// ---------------------------------------------------------------------------------------
// The API client
// ---------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message, requestId) {
    super(message);
    this.status = status;
    this.type = type;
    this.requestId = requestId;
  }
}

function query(params) {
  if (!params) return "";
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((item) => q.append(`${k}[]`, item));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

function headers(admin) {
  return {
    "x-api-key": admin ? keys.admin : keys.api,
    "anthropic-version": API_VERSION,
    "anthropic-beta": BETAS,
  };
}

async function failure(resp) {
  let env = null;
  try { env = await resp.json(); } catch { /* not JSON: the status says enough */ }
  const err = env && env.error;
  return new ApiError(resp.status, (err && err.type) || "error",
    (err && err.message) || `${resp.status} ${resp.statusText}`, env && env.request_id);
}

async function api(method, path, opts = {}) {
  const init = { method, headers: headers(opts.admin), signal: opts.signal };
  if (opts.form) init.body = opts.form;
  else if (opts.body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  const resp = await fetch(path + query(opts.query), init);
  if (!resp.ok) {
    const err = await failure(resp);
    if (resp.status === 401 && !opts.admin && !opts.probe && keys.api) expired(err);
    throw err;
  }
  if (opts.blob) return resp.blob();
  return resp.json();
}

const get = (path, q, opts = {}) => api("GET", path, { ...opts, query: q });
const post = (path, body, opts = {}) => api("POST", path, { ...opts, body });
const del = (path, opts = {}) => api("DELETE", path, opts);

/** Every page of a cursor-paginated list (bounded: a console shows at most `max` items). */
async function listAll(path, q = {}, max = 1000, opts = {}) {
  const out = [];
  let page;
  do {
    const r = await get(path, { ...q, page }, opts);
    out.push(...r.data);
    page = r.next_page;
  } while (page && out.length < max);
  return out;
}

/**
 * Reads a Server-Sent Events stream (WHATWG framing) over fetch, so the key travels in a
 * header (EventSource cannot send one). Resolves when the server closes the stream.
 */
async function stream(path, { q, admin, signal, onOpen, onEvent }) {
  const resp = await fetch(path + query(q), { headers: headers(admin), signal });
  if (!resp.ok) throw await failure(resp);
  if (onOpen) onOpen();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let name = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        // A message without an `event:` line is of type "message" (the WHATWG default).
        name = name || "message";
        if (name !== "ping" && data.length) {
          const text = data.join("\n");
          let parsed;
          try { parsed = JSON.parse(text); } catch { parsed = { type: name, text }; }
          if (name === "error") {
            const e = parsed.error || {};
            throw new ApiError(200, e.type || "error", e.message || text);
          }
          onEvent(name, parsed);
        }
        name = "";
        data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? "" : line.slice(colon + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") name = v;
        else if (field === "data") data.push(v);
      }
    }
  }
}

/** Keeps a stream open: reconnects with backoff until `signal` aborts. */
async function keepStreaming(path, opts, onState) {
  let delay = 500;
  while (!opts.signal.aborted) {
    try {
      await stream(path, { ...opts, onOpen: () => { delay = 500; onState("live"); if (opts.onOpen) opts.onOpen(); } });
      onState("reconnecting");
    } catch (e) {
      if (opts.signal.aborted) return;
      onState(e instanceof ApiError && e.status >= 400 && e.status < 500 ? `error: ${e.message}` : "reconnecting");
      if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) return;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

// ---------------------------------------------------------------------------------------
// DOM helpers
// ---------------------------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "disabled" || k === "selected") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === undefined || k === null || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
  return el;
}

/** Replaces an element's children (skipping null/false, which `replaceChildren` would print). */
function fill(el, ...kids) {
  el.replaceChildren();
  return append(el, kids);
}

const link = (href, ...kids) => h("a", { href }, ...kids);
const json = (v) => h("pre", { class: "json" }, JSON.stringify(v, null, 2));
const when = (iso) => iso ? h("time", { datetime: iso, title: iso }, ago(iso)) : "—";

function ago(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (!Number.isFinite(s)) return iso;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function money(amount) {
  if (!amount) return "—";
  const minor = Number(amount.amount);
  if (!Number.isFinite(minor)) return `${amount.amount} ${amount.currency}`;
  const major = (minor / 100).toFixed(2);
  return amount.currency === "USD" ? `$${major}` : `${major} ${amount.currency}`;
}

const num = (n) => (n === undefined || n === null ? "—" : Number(n).toLocaleString("en-US"));

function badge(status) {
  return h("span", { class: `badge badge-${status || "unknown"}` }, status || "unknown");
}

function errorBox(e) {
  const msg = e instanceof ApiError ? e.message : String(e && e.message ? e.message : e);
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, e instanceof ApiError ? `${e.status} ${e.type}` : "Error"), ": ", msg,
    e && e.requestId ? h("span", { class: "muted" }, ` (request ${e.requestId})`) : null);
}

/** A form whose submit runs `action(values)` with errors shown inline, buttons disabled. */
function form(attrs, fields, submitLabel, action) {
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, submitLabel);
  const el = h("form", { ...attrs, novalidate: false }, fields, h("div", { class: "actions" }, button), status);
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    status.replaceChildren();
    button.disabled = true;
    try {
      await action(Object.fromEntries(new FormData(el).entries()), el);
    } catch (e) {
      fill(status, errorBox(e));
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

let fieldSeq = 0;
function field(label, input, hint) {
  const id = input.id || `f${++fieldSeq}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("small", { class: "muted" }, hint) : null);
}

function select(name, options, value) {
  return h("select", { name },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

function table(columns, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(r)))))));
}

function section(title, ...kids) {
  return h("section", { class: "card" }, h("h2", {}, title), ...kids);
}

function disclose(summary, ...kids) {
  return h("details", { class: "disclose" }, h("summary", {}, summary), ...kids);
}

function confirmThen(message, fn) {
  return async () => { if (window.confirm(message)) await fn(); };
}

async function download(path, filename) {
  const blob = await api("GET", path, { blob: true });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const textOf = (content) => (Array.isArray(content) ? content : [])
  .map((b) => (b.type === "text" ? b.text : b.type === "image" ? "[image]" : b.type === "document" ? "[document]" : ""))
  .join("\n");

// ---------------------------------------------------------------------------------------
// Routing: history API under /console/, one handler per page
// ---------------------------------------------------------------------------------------

const pages = [];
const page = (pattern, title, render, opts = {}) => pages.push({ pattern, title, render, ...opts });
let current = null;

function navigate(path, replace = false) {
  history[replace ? "replaceState" : "pushState"](null, "", path);
  render();
}

function expired(err) {
  keys.clear();
  flash = `Signed out: ${err.message}`;
  navigate("/console/sign-in", true);
}

let flash = "";

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[href^='/console']");
  if (!a || a.target || a.hasAttribute("download") || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
  ev.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", render);

const NAV = [
  ["/console/sessions", "Sessions", "api"],
  ["/console/agents", "Agents", "api"],
  ["/console/environments", "Environments", "api"],
  ["/console/vaults", "Vaults", "api"],
  ["/console/memory", "Memory", "api"],
  ["/console/skills", "Skills", "api"],
  ["/console/files", "Files", "api"],
  ["/console/operations", "Operations", "admin"],
  ["/console/logs", "Logs", "admin"],
];

function layout(path) {
  const nav = h("nav", { "aria-label": "Console" }, h("ul", {},
    NAV.filter(([, , need]) => (need === "admin" ? keys.admin : keys.api)).map(([href, label]) =>
      h("li", {}, h("a", { href, "aria-current": path.startsWith(href) ? "page" : null }, label)))));
  const main = h("main", { id: "main", tabindex: "-1" });
  const signOut = h("button", { class: "link", onclick: () => { keys.clear(); navigate("/console/sign-in"); } }, "Sign out");
  const root = h("div", { class: "shell" },
    h("header", { class: "top" }, h("a", { class: "brand", href: keys.api ? "/console/sessions" : "/console/operations" },
      h("img", { src: "/console/icon.svg", alt: "", width: 22, height: 22 }), "oma"), nav, signOut),
    main);
  return { root, main };
}

async function render() {
  if (current) current.abort();
  const ctrl = new AbortController();
  current = ctrl;
  let path = location.pathname.replace(/\/+$/, "") || "/";
  const app = document.getElementById("app");
  if (!keys.signedIn && path !== "/console/sign-in") {
    navigate("/console/sign-in", true);
    return;
  }
  if (path === "/" || path === "/console") {
    navigate(keys.api ? "/console/sessions" : "/console/operations", true);
    return;
  }
  for (const p of pages) {
    const m = path.match(p.pattern);
    if (!m) continue;
    document.title = `${p.title} · oma console`;
    if (p.bare) {
      app.replaceChildren();
      append(app, [await p.render(m, ctrl.signal)]);
      return;
    }
    const { root, main } = layout(path);
    fill(app, root);
    main.append(h("p", { class: "loading" }, "Loading…"));
    try {
      const content = await p.render(m, ctrl.signal);
      if (ctrl.signal.aborted) return;
      main.replaceChildren();
      append(main, [content]);
    } catch (e) {
      if (ctrl.signal.aborted) return;
      fill(main, h("h1", {}, p.title), errorBox(e));
    }
    return;
  }
  const { root, main } = layout(path);
  main.append(h("h1", {}, "Not found"), h("p", {}, "No console page at ", h("code", {}, path), "."));
  fill(app, root);
}

/** Re-runs `fn` every `ms` until the page is left. */
function every(ms, signal, fn) {
  const t = setInterval(() => { if (signal.aborted) clearInterval(t); else fn(); }, ms);
  signal.addEventListener("abort", () => clearInterval(t));
}

// ---------------------------------------------------------------------------------------
// Sign in
// ---------------------------------------------------------------------------------------

page(/^\/console\/sign-in$/, "Sign in", async () => {
  const note = flash;
  flash = "";
  const f = form({ class: "signin", "aria-labelledby": "signin-title" }, [
    field("API key", h("input", { name: "api_key", id: "api-key", type: "password", autocomplete: "off", spellcheck: "false" }),
      "A tenant's key (`oma keys create`). Kept in this tab's session storage only."),
    field("Admin key (optional)", h("input", { name: "admin_key", id: "admin-key", type: "password", autocomplete: "off", spellcheck: "false" }),
      "The deployment's OMA_ADMIN_KEY: adds operational events and the live log."),
  ], "Sign in", async (v) => {
    const api = v.api_key.trim();
    const admin = v.admin_key.trim();
    if (!api && !admin) throw new Error("enter an API key or an admin key");
    keys.set(api, admin);
    try {
      if (api) await get("/v1/agents", { limit: 1 }, { probe: true });
      if (admin) await get("/v1/oma/admin/ops_events", { limit: 1 }, { admin: true, probe: true });
    } catch (e) {
      keys.clear();
      throw e;
    }
    navigate(api ? "/console/sessions" : "/console/operations");
  });
  return h("div", { class: "signin-page" }, h("main", { id: "main", class: "card narrow" },
    h("h1", { id: "signin-title" }, h("img", { src: "/console/icon.svg", alt: "", width: 28, height: 28 }), " oma console"),
    note ? h("div", { class: "error", role: "alert" }, note) : null, f));
}, { bare: true });

// ---------------------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------------------

const modelName = (m) => (typeof m === "string" ? m : m && m.id) || "—";

function toolsetOf(agent) {
  return (agent.tools || []).find((t) => t.type && t.type.startsWith("agent_toolset"));
}

page(/^\/console\/agents$/, "Agents", async (_m, signal) => {
  const agents = await listAll("/v1/agents", { limit: 100 }, 1000, { signal });
  const create = form({ class: "grid2", "aria-label": "New agent" }, [
    field("Name", h("input", { name: "name", required: true, maxlength: 256 })),
    field("Model", h("input", { name: "model", required: true, value: "claude-sonnet-4-5" })),
    field("System prompt", h("textarea", { name: "system", rows: 4 })),
    field("Built-in tools (bash, edit, read, write, glob, grep, web)", select("toolset", [
      ["always_allow", "Enabled, run without asking"], ["always_ask", "Enabled, ask before each call"], ["none", "Disabled"]], "always_allow")),
    field("Custom tools (JSON array, optional)", h("textarea", { name: "custom_tools", rows: 3, placeholder: '[{"type":"custom","name":"lookup","description":"…","input_schema":{"type":"object"}}]' })),
  ], "Create agent", async (v) => {
    const tools = [];
    if (v.toolset !== "none") {
      tools.push({ type: "agent_toolset_20260401", default_config: { permission_policy: { type: v.toolset } } });
    }
    if (v.custom_tools.trim()) {
      let custom;
      try { custom = JSON.parse(v.custom_tools); } catch (e) { throw new Error(`custom tools: ${e.message}`); }
      if (!Array.isArray(custom)) throw new Error("custom tools: must be a JSON array");
      tools.push(...custom);
    }
    const body = { name: v.name, model: v.model, tools };
    if (v.system.trim()) body.system = v.system;
    const agent = await post("/v1/agents", body);
    navigate(`/console/agents/${encodeURIComponent(agent.id)}`);
  });
  return [
    h("h1", {}, "Agents"),
    disclose("New agent", create),
    section(`${agents.length} agent${agents.length === 1 ? "" : "s"}`, table([
      ["Name", (a) => link(`/console/agents/${encodeURIComponent(a.id)}`, a.name || a.id)],
      ["Model", (a) => modelName(a.model)],
      ["Version", (a) => a.version],
      ["Tools", (a) => (a.tools || []).map((t) => t.type === "custom" ? t.name : t.type).join(", ") || "—"],
      ["Updated", (a) => when(a.updated_at)],
    ], agents, "No agents yet: create one above.")),
  ];
});

/** Lines of a JSON document with sorted keys, so diffs show content, not key order. */
function canonicalLines(v) {
  const sort = (x) => Array.isArray(x) ? x.map(sort)
    : x && typeof x === "object" ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, sort(x[k])])) : x;
  return JSON.stringify(sort(v), null, 2).split("\n");
}

/** A line diff (longest common subsequence): [["=", line] | ["-", line] | ["+", line]]. */
function diffLines(a, b) {
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push(["=", a[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", a[i++]]);
    else out.push(["+", b[j++]]);
  }
  while (i < n) out.push(["-", a[i++]]);
  while (j < m) out.push(["+", b[j++]]);
  return out;
}

function diffView(older, newer) {
  const strip = ({ updated_at, ...rest }) => rest;
  const d = diffLines(canonicalLines(strip(older)), canonicalLines(strip(newer)));
  const changed = d.filter(([op]) => op !== "=").length;
  return h("div", {},
    h("p", { class: "muted" }, changed ? `${changed} changed line${changed === 1 ? "" : "s"}` : "No differences."),
    h("pre", { class: "diff", "aria-label": "Differences between versions" },
      d.map(([op, line]) => h("span", { class: op === "+" ? "add" : op === "-" ? "del" : "same" }, `${op === "=" ? " " : op} ${line}\n`))));
}

page(/^\/console\/agents\/([^/]+)$/, "Agent", async (m, signal) => {
  const id = decodeURIComponent(m[1]);
  const base = `/v1/agents/${encodeURIComponent(id)}`;
  const [agent, versions] = await Promise.all([
    get(base, {}, { signal }),
    listAll(`${base}/versions`, { limit: 100 }, 1000, { signal }),
  ]);
  versions.sort((x, y) => x.version - y.version);
  const byVersion = new Map(versions.map((v) => [String(v.version), v]));
  const diffOut = h("div", {});
  const opts = versions.map((v) => [String(v.version), `v${v.version}`]);
  const from = select("from", opts, String(Math.max(1, agent.version - 1)));
  const to = select("to", opts, String(agent.version));
  const showDiff = () => {
    const a = byVersion.get(from.value);
    const b = byVersion.get(to.value);
    if (a && b) fill(diffOut, diffView(a, b));
  };
  from.addEventListener("change", showDiff);
  to.addEventListener("change", showDiff);
  showDiff();
  const ts = toolsetOf(agent);
  const policy = ts && ts.default_config && ts.default_config.permission_policy ? ts.default_config.permission_policy.type : "—";
  const edit = form({ "aria-label": "Edit agent" }, [
    field("Name", h("input", { name: "name", value: agent.name || "", required: true })),
    field("Model", h("input", { name: "model", value: modelName(agent.model), required: true })),
    field("System prompt", h("textarea", { name: "system", rows: 6 }, agent.system || "")),
  ], "Save as a new version", async (v) => {
    await post(base, { version: agent.version, name: v.name, model: v.model, system: v.system || null });
    render();
  });
  return [
    h("p", { class: "crumbs" }, link("/console/agents", "Agents"), " / ", agent.name || id),
    h("h1", {}, agent.name || id, " ", h("span", { class: "muted" }, `v${agent.version}`), agent.archived_at ? badge("archived") : null),
    h("dl", { class: "facts" },
      h("dt", {}, "ID"), h("dd", {}, h("code", {}, agent.id)),
      h("dt", {}, "Model"), h("dd", {}, modelName(agent.model)),
      h("dt", {}, "Tool permission"), h("dd", {}, policy),
      h("dt", {}, "Updated"), h("dd", {}, when(agent.updated_at))),
    h("div", { class: "actions" },
      link(`/console/sessions?agent=${encodeURIComponent(agent.id)}`, "Sessions of this agent"),
      agent.archived_at ? null : h("button", { class: "danger", onclick: confirmThen("Archive this agent? Sessions can no longer be created with it.", async () => { await post(`${base}/archive`); render(); }) }, "Archive")),
    section("Edit", edit),
    section(`Versions (${versions.length})`, h("div", { class: "row" }, field("From", from), field("To", to)), diffOut),
    section("Definition", json(agent)),
  ];
});

// ---------------------------------------------------------------------------------------
// Environments
// ---------------------------------------------------------------------------------------

page(/^\/console\/environments$/, "Environments", async (_m, signal) => {
  const envs = await listAll("/v1/environments", { limit: 100 }, 1000, { signal });
  const create = form({ class: "grid2", "aria-label": "New environment" }, [
    field("Name", h("input", { name: "name", required: true })),
    field("Type", select("type", [["cloud", "cloud (sandboxed by oma)"], ["self_hosted", "self_hosted (your workers poll for work)"]], "cloud")),
    field("Networking", select("networking", [["unrestricted", "unrestricted"], ["limited", "limited to allowed hosts"]], "unrestricted")),
    field("Allowed hosts (limited only)", h("input", { name: "hosts", placeholder: "api.example.com, *.pypi.org" })),
  ], "Create environment", async (v) => {
    let config = { type: v.type };
    if (v.type === "cloud") {
      config.networking = v.networking === "limited"
        ? { type: "limited", allowed_hosts: v.hosts.split(",").map((s) => s.trim()).filter(Boolean) }
        : { type: "unrestricted" };
    }
    const env = await post("/v1/environments", { name: v.name, config });
    navigate(`/console/environments/${encodeURIComponent(env.id)}`);
  });
  return [
    h("h1", {}, "Environments"),
    disclose("New environment", create),
    section(`${envs.length} environment${envs.length === 1 ? "" : "s"}`, table([
      ["Name", (e) => link(`/console/environments/${encodeURIComponent(e.id)}`, e.name || e.id)],
      ["Type", (e) => (e.config && e.config.type) || "—"],
      ["Networking", (e) => (e.config && e.config.networking && e.config.networking.type) || "—"],
      ["Created", (e) => when(e.created_at)],
    ], envs, "No environments yet: create one above.")),
  ];
});

page(/^\/console\/environments\/([^/]+)$/, "Environment", async (m, signal) => {
  const id = decodeURIComponent(m[1]);
  const base = `/v1/environments/${encodeURIComponent(id)}`;
  const env = await get(base, {}, { signal });
  let stats = null;
  if (env.config && env.config.type === "self_hosted") {
    try { stats = await get(`${base}/work/stats`, {}, { signal }); } catch (e) { stats = { error: e.message }; }
  }
  return [
    h("p", { class: "crumbs" }, link("/console/environments", "Environments"), " / ", env.name || id),
    h("h1", {}, env.name || id, env.archived_at ? badge("archived") : null),
    h("div", { class: "actions" },
      env.archived_at ? null : h("button", { onclick: confirmThen("Archive this environment?", async () => { await post(`${base}/archive`); render(); }) }, "Archive"),
      h("button", { class: "danger", onclick: confirmThen("Delete this environment?", async () => { await del(base); navigate("/console/environments"); }) }, "Delete")),
    stats ? section("Work queue", json(stats)) : null,
    section("Configuration", json(env)),
  ];
});

// ---------------------------------------------------------------------------------------
// Sessions: the list, and the live timeline
// ---------------------------------------------------------------------------------------

const STATUSES = ["idle", "running", "rescheduled", "terminated"];

page(/^\/console\/sessions$/, "Sessions", async (_m, signal) => {
  const params = new URLSearchParams(location.search);
  const filter = { status: params.get("status") || "", agent: params.get("agent") || "", archived: params.get("archived") === "true" };
  const [agents, envs] = await Promise.all([
    listAll("/v1/agents", { limit: 100 }, 1000, { signal }),
    listAll("/v1/environments", { limit: 100 }, 1000, { signal }),
  ]);
  const agentName = new Map(agents.map((a) => [a.id, a.name]));
  const listBox = h("div", { "aria-live": "polite" });
  let nextPage = null;
  let rows = [];
  const q = () => ({
    limit: 50, statuses: filter.status ? [filter.status] : undefined,
    agent_id: filter.agent || undefined, include_archived: filter.archived || undefined,
  });
  const draw = () => {
    fill(listBox, table([
      ["Session", (s) => link(`/console/sessions/${encodeURIComponent(s.id)}`, s.title || s.id)],
      ["Status", (s) => badge(s.status)],
      ["Agent", (s) => (s.agent && (agentName.get(s.agent.id) || s.agent.name || s.agent.id)) || "—"],
      ["Tokens in / out", (s) => `${num(s.usage && s.usage.input_tokens)} / ${num(s.usage && s.usage.output_tokens)}`],
      ["Cost", (s) => money(s.usage && s.usage.list_cost)],
      ["Created", (s) => when(s.created_at)],
    ], rows, "No sessions match."), nextPage ? h("button", { onclick: more }, "Load more") : null);
  };
  const load = async () => {
    const r = await get("/v1/sessions", q(), { signal });
    rows = r.data;
    nextPage = r.next_page;
    draw();
  };
  const more = async () => {
    const r = await get("/v1/sessions", { ...q(), page: nextPage }, { signal });
    rows = rows.concat(r.data);
    nextPage = r.next_page;
    draw();
  };
  await load();
  // Statuses and costs change while the page is open: refresh the first page quietly.
  every(4000, signal, () => { if (!nextPage || rows.length <= 50) load().catch(() => {}); });
  const apply = () => {
    const p = new URLSearchParams();
    if (filter.status) p.set("status", filter.status);
    if (filter.agent) p.set("agent", filter.agent);
    if (filter.archived) p.set("archived", "true");
    history.replaceState(null, "", `/console/sessions${p.toString() ? `?${p}` : ""}`);
    load().catch((e) => fill(listBox, errorBox(e)));
  };
  const statusSel = select("status", [["", "Any status"], ...STATUSES.map((s) => [s, s])], filter.status);
  statusSel.addEventListener("change", () => { filter.status = statusSel.value; apply(); });
  const agentSel = select("agent", [["", "Any agent"], ...agents.map((a) => [a.id, a.name || a.id])], filter.agent);
  agentSel.addEventListener("change", () => { filter.agent = agentSel.value; apply(); });
  const archived = h("input", { type: "checkbox", checked: filter.archived });
  archived.addEventListener("change", () => { filter.archived = archived.checked; apply(); });

  const create = form({ class: "grid2", "aria-label": "New session" }, [
    field("Agent", select("agent", agents.filter((a) => !a.archived_at).map((a) => [a.id, `${a.name || a.id} (v${a.version})`]), filter.agent)),
    field("Environment", select("environment_id", envs.filter((e) => !e.archived_at).map((e) => [e.id, e.name || e.id]))),
    field("Title (optional)", h("input", { name: "title" })),
  ], "Start session", async (v) => {
    if (!v.agent) throw new Error("create an agent first");
    if (!v.environment_id) throw new Error("create an environment first");
    const body = { agent: v.agent, environment_id: v.environment_id };
    if (v.title.trim()) body.title = v.title.trim();
    const s = await post("/v1/sessions", body);
    navigate(`/console/sessions/${encodeURIComponent(s.id)}`);
  });
  return [
    h("h1", {}, "Sessions"),
    disclose("New session", create),
    h("div", { class: "row filters", role: "group", "aria-label": "Filters" },
      field("Status", statusSel), field("Agent", agentSel),
      h("label", { class: "check" }, archived, " Include archived")),
    section("Sessions", listBox),
  ];
});

/** What the timeline shows for one event; `null` for events folded into other views. */
function eventView(ev, t) {
  const who = (label, cls) => h("div", { class: `who ${cls}` }, label);
  const line = (...kids) => h("li", { class: "ev ev-line", "data-type": ev.type }, ...kids);
  switch (ev.type) {
    case "user.message":
      return h("li", { class: "ev ev-user", "data-type": ev.type }, who("You", "you"), h("div", { class: "text" }, textOf(ev.content)));
    case "system.message":
      return h("li", { class: "ev ev-user", "data-type": ev.type }, who("System", "sys"), h("div", { class: "text" }, textOf(ev.content)));
    case "agent.message":
      return h("li", { class: "ev ev-agent", "data-type": ev.type }, who(ev.session_thread_id ? "Subagent" : "Agent", "agent"), h("div", { class: "text" }, textOf(ev.content)));
    case "agent.thinking":
      return line(h("span", { class: "muted" }, "Thinking…"));
    case "agent.tool_use":
    case "agent.mcp_tool_use":
    case "agent.custom_tool_use":
      return t.toolCard(ev);
    case "agent.tool_result":
    case "agent.mcp_tool_result":
      t.toolResult(ev.tool_use_id || ev.mcp_tool_use_id, ev);
      return null;
    case "user.tool_confirmation":
      t.resolve(ev.tool_use_id, ev.result === "allow" ? "Allowed" : `Denied${ev.deny_message ? `: ${ev.deny_message}` : ""}`);
      return null;
    case "user.custom_tool_result":
      t.resolve(ev.custom_tool_use_id, "Result sent");
      t.toolResult(ev.custom_tool_use_id, ev);
      return null;
    case "user.tool_result":
      t.toolResult(ev.tool_use_id, ev);
      return null;
    case "user.interrupt":
      return line(h("strong", {}, "Interrupted"), " by you");
    case "session.status_running":
      return line(badge("running"));
    case "session.status_idle": {
      const r = ev.stop_reason || {};
      return line(badge("idle"), " ", r.type === "requires_action" ? "waiting for you" : (r.type || "").replace(/_/g, " "));
    }
    case "session.status_rescheduled":
      return line(badge("rescheduled"), " retrying");
    case "session.status_terminated":
      return line(badge("terminated"));
    case "session.error": {
      const e = ev.error || {};
      return h("li", { class: "ev ev-error", role: "alert", "data-type": ev.type },
        h("strong", {}, e.type || "error"), ": ", e.message || "", e.retry_status ? h("span", { class: "muted" }, ` (${e.retry_status.type})`) : null);
    }
    case "span.model_request_end": {
      const u = ev.model_usage || {};
      return line(h("span", { class: "muted" }, `model request${ev.is_error ? " failed" : ""}: ${num(u.input_tokens)} in, ${num(u.output_tokens)} out${u.cache_read_input_tokens ? `, ${num(u.cache_read_input_tokens)} cached` : ""}`));
    }
    case "span.model_request_start":
    case "session.usage":
    case "event_start":
    case "event_delta":
      return null;
    case "session.thread_created":
      return line("Thread started: ", h("strong", {}, ev.agent_name || ev.session_thread_id || ""));
    case "agent.thread_message_sent":
      return line("→ ", ev.to_agent_name || ev.to_session_thread_id || "thread", ": ", textOf(ev.content));
    case "agent.thread_message_received":
      return line("← ", ev.from_agent_name || ev.from_session_thread_id || "thread", ": ", textOf(ev.content));
    case "span.outcome_evaluation_end":
      return line("Outcome evaluation ", h("strong", {}, ev.result || ""), ev.explanation ? `: ${ev.explanation}` : "");
    case "user.define_outcome":
      return line("Outcome: ", ev.description || "");
    default:
      if (ev.type && ev.type.startsWith("session.thread_status_")) {
        return line(h("span", { class: "muted" }, `${ev.agent_name || "thread"}: ${ev.type.slice("session.thread_status_".length)}`));
      }
      return line(h("span", { class: "muted" }, ev.type), disclose("details", json(ev)));
  }
}

page(/^\/console\/sessions\/([^/]+)$/, "Session", async (m, signal) => {
  const id = decodeURIComponent(m[1]);
  const base = `/v1/sessions/${encodeURIComponent(id)}`;
  let session = await get(base, {}, { signal });
  const threadId = new URLSearchParams(location.search).get("thread") || "";

  const heading = h("h1", {});
  const statusEl = h("span", { id: "session-status" });
  const liveEl = h("span", { class: "live muted", "aria-live": "polite" }, "connecting…");
  const usageEl = h("dl", { class: "facts usage", "aria-label": "Usage and cost" });
  const timeline = h("ol", { class: "timeline", "aria-label": "Timeline", "aria-live": "polite" });
  const threadsEl = h("div", { class: "threads" });
  const seen = new Set();
  const cards = new Map();
  const previews = new Map();
  const pendingResults = new Map();
  const resolved = new Map();

  const drawHeader = () => {
    fill(heading, session.title || session.id);
    fill(statusEl, badge(session.status));
    interrupt.disabled = session.status !== "running" && session.status !== "rescheduled";
    drawUsage(session.usage || {});
  };
  const drawUsage = (u) => {
    fill(usageEl, 
      h("dt", {}, "Cost"), h("dd", { id: "session-cost" }, money(u.list_cost)),
      h("dt", {}, "Input tokens"), h("dd", {}, num(u.input_tokens)),
      h("dt", {}, "Output tokens"), h("dd", {}, num(u.output_tokens)),
      h("dt", {}, "Cache reads"), h("dd", {}, num(u.cache_read_input_tokens)),
      h("dt", {}, "Active"), h("dd", {}, u.active_seconds ? `${u.active_seconds.toFixed(1)} s` : "—"));
  };
  const refreshSession = async () => {
    try { session = await get(base, {}, { signal }); drawHeader(); } catch { /* the stream shows the state */ }
  };

  const send = (events) => post(`${base}/events`, { events });

  // The timeline's view of tool calls: one card per call, its result and its answer inside.
  const t = {
    toolCard(ev) {
      const title = ev.type === "agent.mcp_tool_use" ? `${ev.mcp_server_name}.${ev.name}` : ev.name;
      const input = ev.name === "bash" && ev.input && typeof ev.input.command === "string"
        ? h("pre", { class: "cmd" }, `$ ${ev.input.command}`) : json(ev.input);
      const answer = h("div", { class: "answer" });
      const result = h("div", { class: "result" });
      const card = h("li", { class: "ev ev-tool", "data-type": ev.type, "data-tool-use-id": ev.id },
        h("div", { class: "tool-head" }, h("span", { class: "tool-name" }, ev.type === "agent.custom_tool_use" ? `custom tool · ${title}` : `tool · ${title}`),
          ev.evaluated_permission ? h("span", { class: `perm perm-${ev.evaluated_permission}` }, ev.evaluated_permission) : null,
          ev.session_thread_id ? h("span", { class: "muted" }, " (subagent)") : null),
        input, answer, result);
      cards.set(ev.id, { card, answer, result });
      if (ev.type === "agent.custom_tool_use") answer.append(customAnswer(ev));
      else if (ev.evaluated_permission === "ask") answer.append(confirmAnswer(ev));
      if (resolved.has(ev.id)) t.resolve(ev.id, resolved.get(ev.id));
      if (pendingResults.has(ev.id)) { t.toolResult(ev.id, pendingResults.get(ev.id)); pendingResults.delete(ev.id); }
      return card;
    },
    toolResult(useId, ev) {
      const c = cards.get(useId);
      if (!c) { pendingResults.set(useId, ev); return; }
      const text = typeof ev.content === "string" ? ev.content : textOf(ev.content);
      fill(c.result, h("div", { class: ev.is_error ? "out out-error" : "out" },
        h("span", { class: "muted" }, ev.is_error ? "error" : "result"), h("pre", {}, text || "(no output)")));
    },
    resolve(useId, label) {
      resolved.set(useId, label);
      const c = cards.get(useId);
      if (c) fill(c.answer, h("span", { class: "resolved" }, label));
    },
  };

  const confirmAnswer = (ev) => {
    const reason = h("input", { placeholder: "Reason (optional, sent with a deny)", "aria-label": "Deny reason" });
    const status = h("span", { "aria-live": "polite" });
    const act = (result) => async () => {
      buttons.forEach((b) => { b.disabled = true; });
      const e = { type: "user.tool_confirmation", tool_use_id: ev.id, result };
      if (result === "deny" && reason.value.trim()) e.deny_message = reason.value.trim();
      try { await send([e]); t.resolve(ev.id, result === "allow" ? "Allowed" : "Denied"); } catch (err) {
        fill(status, errorBox(err));
        buttons.forEach((b) => { b.disabled = false; });
      }
    };
    const buttons = [
      h("button", { class: "allow", onclick: act("allow") }, "Allow"),
      h("button", { class: "danger", onclick: act("deny") }, "Deny"),
    ];
    return h("div", { class: "confirm", role: "group", "aria-label": `Confirm ${ev.name}` },
      h("span", {}, "The agent asks to run this."), buttons, reason, status);
  };

  const customAnswer = (ev) => form({ class: "custom-answer", "aria-label": `Result of ${ev.name}` }, [
    field("Result", h("textarea", { name: "content", rows: 2, required: true })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "is_error", value: "true" }), " Is an error"),
  ], "Send result", async (v) => {
    await send([{ type: "user.custom_tool_result", custom_tool_use_id: ev.id, is_error: v.is_error === "true", content: [{ type: "text", text: v.content }] }]);
    t.resolve(ev.id, "Result sent");
  });

  const nearBottom = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
  const add = (ev) => {
    if (!ev || !ev.id || seen.has(ev.id)) {
      if (ev && ev.type === "event_delta") delta(ev);
      else if (ev && ev.type === "event_start") start(ev);
      return;
    }
    seen.add(ev.id);
    const stick = nearBottom();
    if (ev.type === "session.usage" && ev.usage) drawUsage(ev.usage);
    if (ev.type && ev.type.startsWith("session.status_")) {
      session.status = ev.type.slice("session.status_".length);
      drawHeader();
      if (ev.type !== "session.status_running") refreshSession();
    }
    if (ev.type === "session.thread_created") loadThreads();
    const el = eventView(ev, t);
    if (!el) return;
    const preview = previews.get(ev.id);
    if (preview) { preview.replaceWith(el); previews.delete(ev.id); } else timeline.append(el);
    if (stick) el.scrollIntoView({ block: "end" });
  };
  const start = (ev) => {
    const e = ev.event || {};
    if (e.type !== "agent.message" || seen.has(e.id) || previews.has(e.id)) return;
    const el = h("li", { class: "ev ev-agent preview", "data-type": "preview" }, h("div", { class: "who agent" }, "Agent"), h("div", { class: "text" }));
    previews.set(e.id, el);
    timeline.append(el);
  };
  const delta = (ev) => {
    const el = previews.get(ev.event_id);
    const c = ev.delta && ev.delta.content;
    if (el && c && c.type === "text") el.querySelector(".text").append(c.text);
  };

  const streamPath = threadId ? `${base}/threads/${encodeURIComponent(threadId)}/stream` : `${base}/events/stream`;
  const listPath = threadId ? `${base}/threads/${encodeURIComponent(threadId)}/events` : `${base}/events`;
  // Like the SDK's runner: open the stream first, then read the history, de-duplicated by id,
  // so nothing between the two is lost. On a reconnect the history read fills the gap.
  keepStreaming(streamPath, {
    q: { event_deltas: ["agent.message"] }, signal,
    onEvent: (_name, ev) => add(ev),
    onOpen: () => { listAll(listPath, { limit: 1000 }, 100000, { signal }).then((evs) => evs.forEach(add)).catch((e) => timeline.append(h("li", {}, errorBox(e)))); },
  }, (state) => { fill(liveEl, state === "live" ? "● live" : state); });

  async function loadThreads() {
    try {
      const threads = await listAll(`${base}/threads`, { limit: 1000 }, 1000, { signal });
      if (threads.length <= 1 && !threadId) { threadsEl.replaceChildren(); return; }
      fill(threadsEl, h("nav", { class: "tabs", "aria-label": "Threads" },
        link(`/console/sessions/${encodeURIComponent(id)}`, "Primary"),
        threads.filter((th) => th.parent_thread_id || th.agent_name).map((th) =>
          h("a", { href: `/console/sessions/${encodeURIComponent(id)}?thread=${encodeURIComponent(th.id)}`, "aria-current": th.id === threadId ? "page" : null },
            th.agent_name || th.id, " ", badge(th.status)))));
    } catch { /* threads are optional context */ }
  }
  loadThreads();

  const interrupt = h("button", { id: "interrupt", onclick: async () => { await send([{ type: "user.interrupt" }]).catch((e) => alert(e.message)); } }, "Interrupt");
  const composer = form({ class: "composer", "aria-label": "Send a message" }, [
    field("Message", h("textarea", { name: "text", id: "message", rows: 3, required: true, placeholder: "Ask the agent… (Ctrl+Enter sends)" })),
  ], "Send", async (v, el) => {
    if (!v.text.trim()) return;
    await send([{ type: "user.message", content: [{ type: "text", text: v.text }] }]);
    el.reset();
  });
  composer.querySelector("textarea").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); composer.requestSubmit(); }
  });
  drawHeader();
  return [
    h("p", { class: "crumbs" }, link("/console/sessions", "Sessions"), " / ", session.id),
    h("div", { class: "session-head" }, heading, statusEl, liveEl),
    h("dl", { class: "facts" },
      h("dt", {}, "Agent"), h("dd", {}, session.agent ? link(`/console/agents/${encodeURIComponent(session.agent.id)}`, `${session.agent.name || session.agent.id} v${session.agent.version}`) : "—"),
      h("dt", {}, "Environment"), h("dd", {}, session.environment_id ? link(`/console/environments/${encodeURIComponent(session.environment_id)}`, session.environment_id) : "—"),
      h("dt", {}, "Created"), h("dd", {}, when(session.created_at))),
    usageEl,
    threadsEl,
    h("div", { class: "actions" }, interrupt,
      session.archived_at ? null : h("button", { onclick: confirmThen("Archive this session?", async () => { await post(`${base}/archive`); refreshSession(); }) }, "Archive")),
    timeline,
    threadId ? h("p", { class: "muted" }, "Messages go to the primary thread.") : null,
    composer,
  ];
});

// ---------------------------------------------------------------------------------------
// Vaults and credentials (secrets are write-only: sent, never shown or read back)
// ---------------------------------------------------------------------------------------

page(/^\/console\/vaults$/, "Vaults", async (_m, signal) => {
  const vaults = await listAll("/v1/vaults", { limit: 100 }, 1000, { signal });
  const create = form({ class: "grid2", "aria-label": "New vault" }, [
    field("Name", h("input", { name: "display_name", required: true })),
  ], "Create vault", async (v) => {
    const vault = await post("/v1/vaults", { display_name: v.display_name });
    navigate(`/console/vaults/${encodeURIComponent(vault.id)}`);
  });
  return [
    h("h1", {}, "Vaults"),
    disclose("New vault", create),
    section(`${vaults.length} vault${vaults.length === 1 ? "" : "s"}`, table([
      ["Name", (v) => link(`/console/vaults/${encodeURIComponent(v.id)}`, v.display_name || v.id)],
      ["ID", (v) => h("code", {}, v.id)],
      ["Created", (v) => when(v.created_at)],
    ], vaults, "No vaults yet.")),
  ];
});

function credentialTarget(c) {
  const a = c.auth || {};
  return a.mcp_server_url || a.secret_name || "—";
}

page(/^\/console\/vaults\/([^/]+)$/, "Vault", async (m, signal) => {
  const id = decodeURIComponent(m[1]);
  const base = `/v1/vaults/${encodeURIComponent(id)}`;
  const [vault, creds] = await Promise.all([
    get(base, {}, { signal }),
    listAll(`${base}/credentials`, { limit: 100 }, 1000, { signal }),
  ]);
  const secret = (name, label) => field(label, h("input", { name, type: "password", autocomplete: "new-password", required: true }), "Write-only: never shown again.");
  const kind = select("type", [["static_bearer", "static_bearer (MCP server token)"], ["mcp_oauth", "mcp_oauth (MCP OAuth access token)"], ["environment_variable", "environment_variable (injected at the egress)"]], "static_bearer");
  const specific = h("div", {});
  const drawKind = () => {
    if (kind.value === "environment_variable") {
      fill(specific, 
        field("Secret name", h("input", { name: "secret_name", required: true, placeholder: "GITHUB_TOKEN" })),
        secret("secret_value", "Secret value"),
        field("Allowed hosts (empty: unrestricted)", h("input", { name: "hosts", placeholder: "api.github.com" })));
    } else {
      fill(specific, 
        field("MCP server URL", h("input", { name: "mcp_server_url", type: "url", required: true })),
        secret(kind.value === "mcp_oauth" ? "access_token" : "token", kind.value === "mcp_oauth" ? "Access token" : "Token"));
    }
  };
  kind.addEventListener("change", drawKind);
  drawKind();
  const create = form({ "aria-label": "New credential" }, [
    field("Name", h("input", { name: "display_name" })), field("Type", kind), specific,
  ], "Add credential", async (v, el) => {
    let auth;
    if (v.type === "environment_variable") {
      const hosts = (v.hosts || "").split(",").map((s) => s.trim()).filter(Boolean);
      auth = { type: v.type, secret_name: v.secret_name, secret_value: v.secret_value,
        networking: hosts.length ? { type: "limited", allowed_hosts: hosts } : { type: "unrestricted" } };
    } else if (v.type === "mcp_oauth") {
      auth = { type: v.type, mcp_server_url: v.mcp_server_url, access_token: v.access_token };
    } else {
      auth = { type: v.type, mcp_server_url: v.mcp_server_url, token: v.token };
    }
    const body = { auth };
    if (v.display_name) body.display_name = v.display_name;
    el.reset();
    await post(`${base}/credentials`, body);
    render();
  });
  return [
    h("p", { class: "crumbs" }, link("/console/vaults", "Vaults"), " / ", vault.display_name || id),
    h("h1", {}, vault.display_name || id),
    h("p", { class: "muted" }, "Sessions use a vault through ", h("code", {}, "vault_ids"), ". Secrets are sealed at rest and injected at the network edge; nothing here can read them back."),
    section("Credentials", table([
      ["Name", (c) => c.display_name || c.id],
      ["Type", (c) => (c.auth && c.auth.type) || "—"],
      ["For", credentialTarget],
      ["Created", (c) => when(c.created_at)],
      ["", (c) => h("button", { class: "danger small", onclick: confirmThen(`Delete credential ${c.display_name || c.id}?`, async () => { await del(`${base}/credentials/${encodeURIComponent(c.id)}`); render(); }) }, "Delete")],
    ], creds, "No credentials in this vault.")),
    section("Add a credential", create),
  ];
});

// ---------------------------------------------------------------------------------------
// Memory stores: browse by path, edit with a precondition, versions
// ---------------------------------------------------------------------------------------

page(/^\/console\/memory$/, "Memory", async (_m, signal) => {
  const stores = await listAll("/v1/memory_stores", { limit: 100 }, 1000, { signal });
  const create = form({ class: "grid2", "aria-label": "New memory store" }, [
    field("Name", h("input", { name: "name", required: true })),
    field("Description", h("input", { name: "description" })),
  ], "Create memory store", async (v) => {
    const body = { name: v.name };
    if (v.description) body.description = v.description;
    const s = await post("/v1/memory_stores", body);
    navigate(`/console/memory/${encodeURIComponent(s.id)}`);
  });
  return [
    h("h1", {}, "Memory stores"),
    disclose("New memory store", create),
    section(`${stores.length} store${stores.length === 1 ? "" : "s"}`, table([
      ["Name", (s) => link(`/console/memory/${encodeURIComponent(s.id)}`, s.name || s.id)],
      ["Description", (s) => s.description || ""],
      ["Created", (s) => when(s.created_at)],
    ], stores, "No memory stores yet.")),
  ];
});

async function sha256Hex(text) {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

page(/^\/console\/memory\/([^/]+)$/, "Memory store", async (m, signal) => {
  const id = decodeURIComponent(m[1]);
  const base = `/v1/memory_stores/${encodeURIComponent(id)}`;
  const params = new URLSearchParams(location.search);
  const prefix = params.get("prefix") || "/";
  const open = params.get("memory");
  const here = (p, mem) => `/console/memory/${encodeURIComponent(id)}?prefix=${encodeURIComponent(p)}${mem ? `&memory=${encodeURIComponent(mem)}` : ""}`;
  const [store, items] = await Promise.all([
    get(base, {}, { signal }),
    listAll(`${base}/memories`, { path_prefix: prefix, depth: 1, limit: 100 }, 2000, { signal }),
  ]);
  const parts = prefix.split("/").filter(Boolean);
  const crumbs = [link(here("/"), "/")];
  parts.forEach((p, i) => crumbs.push(link(here(`/${parts.slice(0, i + 1).join("/")}/`), `${p}/`)));
  const browser = table([
    ["Path", (it) => it.type === "memory_prefix" ? link(here(it.path), `📁 ${it.path}`) : link(here(prefix, it.id), it.path)],
    ["Size", (it) => it.type === "memory" ? `${num(it.content_size_bytes)} B` : ""],
    ["Updated", (it) => it.type === "memory" ? when(it.updated_at) : ""],
  ], items, "Nothing under this path.");
  let editor = null;
  if (open) {
    const mem = await get(`${base}/memories/${encodeURIComponent(open)}`, { view: "full" }, { signal });
    const versions = await listAll(`${base}/memory_versions`, { memory_id: open, limit: 100 }, 500, { signal });
    const versionView = h("div", {});
    editor = section(`Memory ${mem.path}`,
      form({ "aria-label": "Edit memory" }, [
        field("Path", h("input", { name: "path", value: mem.path, required: true })),
        field("Content", h("textarea", { name: "content", rows: 12, class: "mono" }, mem.content || "")),
      ], "Save", async (v) => {
        // Only if nobody changed it since it was read: a conflict is a 409, shown, not lost.
        const expected = mem.content_sha256 || await sha256Hex(mem.content || "");
        const body = { content: v.content, precondition: { type: "content_sha256", content_sha256: expected } };
        if (v.path !== mem.path) body.path = v.path;
        await post(`${base}/memories/${encodeURIComponent(open)}`, body);
        render();
      }),
      h("div", { class: "actions" }, h("button", { class: "danger", onclick: confirmThen(`Delete ${mem.path}?`, async () => { await del(`${base}/memories/${encodeURIComponent(open)}`); navigate(here(prefix)); }) }, "Delete memory")),
      h("h3", {}, `Versions (${versions.length})`),
      table([
        ["When", (v) => when(v.created_at)],
        ["Operation", (v) => v.operation],
        ["By", (v) => v.session_id || v.api_key_id || "—"],
        ["", (v) => h("button", { class: "small", onclick: async () => {
          const full = await get(`${base}/memory_versions/${encodeURIComponent(v.id)}`, { view: "full" });
          fill(versionView, h("h4", {}, `${v.operation} · ${v.created_at}`), h("pre", { class: "json" }, full.content == null ? "(no content)" : full.content));
        } }, "View")],
      ], versions), versionView);
  }
  const create = form({ class: "grid2", "aria-label": "New memory" }, [
    field("Path", h("input", { name: "path", required: true, value: prefix === "/" ? "/notes.md" : `${prefix}notes.md` })),
    field("Content", h("textarea", { name: "content", rows: 4 })),
  ], "Create memory", async (v) => {
    const mem = await post(`${base}/memories`, { path: v.path, content: v.content });
    navigate(here(prefix, mem.id));
  });
  return [
    h("p", { class: "crumbs" }, link("/console/memory", "Memory"), " / ", store.name || id),
    h("h1", {}, store.name || id),
    section("Browse", h("p", { class: "crumbs" }, crumbs), browser),
    editor,
    disclose("New memory", create),
  ];
});

// ---------------------------------------------------------------------------------------
// Skills and files
// ---------------------------------------------------------------------------------------

function skillForm(label, onDone, withName) {
  const files = h("input", { type: "file", name: "files", multiple: true, webkitdirectory: true, required: true });
  const fields = [field("Skill folder (with SKILL.md at its root)", files)];
  if (withName) fields.unshift(field("Display name (optional)", h("input", { name: "display_name" })));
  return { files, fields, submit: async (path, v) => {
    const fd = new FormData();
    if (withName && v.display_name) fd.append("display_name", v.display_name);
    for (const f of files.files) fd.append("files[]", f, f.webkitRelativePath || f.name);
    if (!files.files.length) throw new Error("choose a folder");
    const r = await api("POST", path, { form: fd });
    onDone(r);
  }, label };
}

page(/^\/console\/skills$/, "Skills", async (_m, signal) => {
  const skills = await listAll("/v1/skills", { limit: 100 }, 1000, { signal });
  const sf = skillForm("Upload skill", (s) => navigate(`/console/skills/${encodeURIComponent(s.id)}`), true);
  return [
    h("h1", {}, "Skills"),
    disclose("Upload a skill", form({ "aria-label": "Upload skill" }, sf.fields, sf.label, (v) => sf.submit("/v1/skills", v))),
    section(`${skills.length} skill${skills.length === 1 ? "" : "s"}`, table([
      ["Name", (s) => link(`/console/skills/${encodeURIComponent(s.id)}`, s.display_name || s.id)],
      ["Source", (s) => s.source || "—"],
      ["Latest version", (s) => s.latest_version || "—"],
      ["Created", (s) => when(s.created_at)],
    ], skills, "No skills yet.")),
  ];
});

page(/^\/console\/skills\/([^/]+)$/, "Skill", async (m, signal) => {
  const id = decodeURIComponent(m[1]);
  const base = `/v1/skills/${encodeURIComponent(id)}`;
  const [skill, versions] = await Promise.all([get(base, {}, { signal }), listAll(`${base}/versions`, { limit: 100 }, 1000, { signal })]);
  const sf = skillForm("Upload new version", () => render(), false);
  return [
    h("p", { class: "crumbs" }, link("/console/skills", "Skills"), " / ", skill.display_name || id),
    h("h1", {}, skill.display_name || id),
    section("Versions", table([
      ["Version", (v) => v.version],
      ["Name", (v) => v.name || "—"],
      ["Description", (v) => v.description || ""],
      ["Created", (v) => when(v.created_at)],
      ["", (v) => h("button", { class: "small", onclick: () => download(`${base}/versions/${encodeURIComponent(v.version)}/content`, `${skill.display_name || id}-${v.version}.zip`).catch((e) => alert(e.message)) }, "Download")],
    ], versions)),
    disclose("Upload a new version", form({ "aria-label": "Upload version" }, sf.fields, sf.label, (v) => sf.submit(`${base}/versions`, v))),
    h("div", { class: "actions" }, h("button", { class: "danger", onclick: confirmThen("Delete this skill and all its versions?", async () => {
      for (const v of versions) await del(`${base}/versions/${encodeURIComponent(v.version)}`);
      await del(base);
      navigate("/console/skills");
    }) }, "Delete skill")),
  ];
});

page(/^\/console\/files$/, "Files", async (_m, signal) => {
  const files = await listAll("/v1/files", { limit: 1000 }, 5000, { signal });
  const input = h("input", { type: "file", name: "file", required: true });
  const upload = form({ "aria-label": "Upload file" }, [field("File", input)], "Upload", async () => {
    if (!input.files.length) throw new Error("choose a file");
    const fd = new FormData();
    fd.append("file", input.files[0], input.files[0].name);
    await api("POST", "/v1/files", { form: fd });
    render();
  });
  return [
    h("h1", {}, "Files"),
    section("Upload", upload),
    section(`${files.length} file${files.length === 1 ? "" : "s"}`, table([
      ["Name", (f) => f.filename],
      ["Type", (f) => f.mime_type || "—"],
      ["Size", (f) => `${num(f.size_bytes)} B`],
      ["Created", (f) => when(f.created_at)],
      ["", (f) => h("span", { class: "row" },
        f.downloadable === false ? null : h("button", { class: "small", onclick: () => download(`/v1/files/${encodeURIComponent(f.id)}/content`, f.filename).catch((e) => alert(e.message)) }, "Download"),
        h("button", { class: "small danger", onclick: confirmThen(`Delete ${f.filename}?`, async () => { await del(`/v1/files/${encodeURIComponent(f.id)}`); render(); }) }, "Delete"))],
    ], files, "No files yet.")),
  ];
});

// ---------------------------------------------------------------------------------------
// Operations (admin key): counts per kind as charts, recent events, the live log tail
// ---------------------------------------------------------------------------------------

/** A horizontal bar chart (SVG), labelled for screen readers by its table twin. */
function barChart(title, rows) {
  if (!rows.length) return h("p", { class: "empty" }, `${title}: nothing recorded in this window.`);
  const max = Math.max(...rows.map((r) => r.count));
  const rowH = 26;
  const labelW = 190;
  const width = 640;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${rows.length * rowH + 4}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}: ${rows.map((r) => `${r.label} ${r.count}`).join(", ")}`);
  svg.setAttribute("class", "chart");
  rows.forEach((r, i) => {
    const y = i * rowH + 2;
    const w = Math.max(2, ((width - labelW - 70) * r.count) / max);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", labelW - 8); label.setAttribute("y", y + 17); label.setAttribute("text-anchor", "end");
    label.textContent = r.label;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", labelW); bar.setAttribute("y", y + 3); bar.setAttribute("width", w); bar.setAttribute("height", rowH - 8);
    bar.setAttribute("rx", 3); bar.setAttribute("class", r.bad ? "bar bad" : "bar");
    const count = document.createElementNS(ns, "text");
    count.setAttribute("x", labelW + w + 6); count.setAttribute("y", y + 17);
    count.textContent = num(r.count);
    svg.append(label, bar, count);
  });
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title), svg);
}

const BAD_OUTCOMES = new Set(["error", "denied", "failed", "timeout", "refused", "oom"]);

page(/^\/console\/operations$/, "Operations", async (_m, signal) => {
  const params = new URLSearchParams(location.search);
  const since = params.get("since") || "24h";
  const kind = params.get("kind") || "";
  const opts = { signal, admin: true };
  const [byKind, byOutcome, recent] = await Promise.all([
    get("/v1/oma/admin/ops_events", { since, group_by: "kind", limit: 100 }, opts),
    get("/v1/oma/admin/ops_events", { since, group_by: "kind,outcome", limit: 200 }, opts),
    get("/v1/oma/admin/ops_events", { since, kind: kind || undefined, limit: 50 }, opts),
  ]);
  const kinds = byKind.data.map((g) => ({ label: g.kind || "?", count: g.count, bad: g.kind === "silent_catch" || g.kind === "egress_denied" || g.kind === "sandbox_oom" }))
    .sort((a, b) => b.count - a.count);
  const failures = byOutcome.data.filter((g) => BAD_OUTCOMES.has(g.outcome) || g.kind === "silent_catch")
    .map((g) => ({ label: `${g.kind}${g.outcome ? ` · ${g.outcome}` : ""}`, count: g.count, bad: true }))
    .sort((a, b) => b.count - a.count);
  const toolErrors = byOutcome.data.filter((g) => g.kind === "tool_call" && g.outcome !== "ok").reduce((n, g) => n + g.count, 0);
  const silent = byKind.data.filter((g) => g.kind === "silent_catch").reduce((n, g) => n + g.count, 0);
  const go = (s, k) => `/console/operations?since=${encodeURIComponent(s)}${k ? `&kind=${encodeURIComponent(k)}` : ""}`;
  every(10000, signal, () => { if (document.visibilityState === "visible") render(); });
  return [
    h("h1", {}, "Operations"),
    h("nav", { class: "tabs", "aria-label": "Time window" }, ["1h", "24h", "7d", "30d"].map((s) =>
      h("a", { href: go(s, kind), "aria-current": s === since ? "page" : null }, `last ${s}`))),
    h("div", { class: "stats" },
      h("div", { class: "stat" }, h("span", { class: "n" }, num(kinds.reduce((n, k) => n + k.count, 0))), h("span", {}, "events")),
      h("div", { class: `stat ${toolErrors ? "bad" : ""}` }, h("span", { class: "n", id: "tool-errors" }, num(toolErrors)), h("span", {}, "tool errors")),
      h("div", { class: `stat ${silent ? "bad" : ""}` }, h("span", { class: "n", id: "silent-catches" }, num(silent)), h("span", {}, "silent catches"))),
    section("Events by kind", barChart("Events by kind", kinds)),
    section("What fails most", barChart("Failures by kind and outcome", failures)),
    section(`Recent events${kind ? ` · ${kind}` : ""}`,
      h("p", {}, "Kind: ", link(go(since, ""), "all"), kinds.map((k) => [" · ", link(go(since, k.label), k.label)])),
      table([
        ["When", (e) => when(e.at)],
        ["Kind", (e) => e.kind],
        ["Outcome", (e) => e.outcome ? h("span", { class: BAD_OUTCOMES.has(e.outcome) ? "perm perm-deny" : "" }, e.outcome) : "—"],
        ["Session", (e) => e.session_id ? h("code", {}, e.session_id) : "—"],
        ["Duration", (e) => (e.duration_ms == null ? "—" : `${e.duration_ms} ms`)],
        ["Details", (e) => e.fields && Object.keys(e.fields).length ? disclose("fields", json(e.fields)) : ""],
      ], recent.data, "No events in this window.")),
  ];
});

page(/^\/console\/logs$/, "Logs", async (_m, signal) => {
  const out = h("ol", { class: "logs", "aria-label": "Log records", "aria-live": "off" });
  const state = h("span", { class: "live muted", "aria-live": "polite" }, "connecting…");
  const level = select("level", [["info", "info and above"], ["debug", "debug and above"], ["warn", "warnings and errors"], ["error", "errors"], ["trace", "everything"]], new URLSearchParams(location.search).get("level") || "info");
  const component = h("input", { placeholder: "any component", value: new URLSearchParams(location.search).get("component") || "" });
  let paused = false;
  const pause = h("button", { onclick: () => { paused = !paused; pause.textContent = paused ? "Resume" : "Pause"; } }, "Pause");
  const restart = () => {
    const p = new URLSearchParams({ level: level.value });
    if (component.value.trim()) p.set("component", component.value.trim());
    navigate(`/console/logs?${p}`, true);
  };
  level.addEventListener("change", restart);
  component.addEventListener("change", restart);
  keepStreaming("/v1/oma/admin/logs", {
    admin: true, signal,
    q: { level: level.value, component: component.value.trim() || undefined },
    onEvent: (_name, rec) => {
      if (paused) return;
      const lvl = String(rec.level || "info").toLowerCase();
      const { ts, level: _l, component: _c, target, msg, ...rest } = rec;
      const fields = Object.keys(rest).length ? JSON.stringify(rest) : "";
      out.append(h("li", { class: `log log-${lvl}` },
        h("span", { class: "t" }, String(ts || "").slice(11, 23)), " ",
        h("span", { class: "lvl" }, lvl.toUpperCase()), " ",
        h("span", { class: "comp", title: target || "" }, rec.component || target || ""), " ",
        typeof msg === "string" ? msg : JSON.stringify(msg), fields ? h("span", { class: "muted" }, ` ${fields}`) : null));
      while (out.childElementCount > 2000) out.firstElementChild.remove();
      if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 160) out.lastElementChild.scrollIntoView({ block: "end" });
    },
  }, (s) => { fill(state, s === "live" ? "● live" : s); });
  return [
    h("div", { class: "session-head" }, h("h1", {}, "Live log"), state),
    h("div", { class: "row filters" }, field("Level", level), field("Component", component), pause,
      h("button", { onclick: () => out.replaceChildren() }, "Clear")),
    out,
  ];
});

render();
