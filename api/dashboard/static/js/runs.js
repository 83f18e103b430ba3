// Runs: a page of GET /v1/runs (filters and keyset pagination on the server), kept live by
// the feed: a run that starts appears at the top, and its row changes as its state does.
import { apiGet, openFeed } from "./api.js";
import { el, failure, fmt, statusBadge, table, tableRow } from "./dom.js";

const YES_NO = [["", "any"], ["true", "yes"], ["false", "no"]];
const SINCE = [["", "any time"], ["1", "last hour"], ["24", "last 24 hours"], ["168", "last 7 days"]];

const COLUMNS = [
  { label: "Correlation id", value: (r) => el("a", { href: `#/runs/${encodeURIComponent(r.correlation_id)}` }, r.correlation_id) },
  { label: "Status", value: (r) => statusBadge(r.status) },
  { label: "Started", value: (r) => fmt.time(r.started_at) },
  { label: "Model", value: (r) => r.model ?? "–" },
  { label: "Provider", value: (r) => r.provider ?? "–" },
  { label: "Mode", value: (r) => r.mode ?? "–" },
  { label: "Latency", value: (r) => fmt.ms(r.latency_ms), numeric: true },
  { label: "Tokens in/out", value: (r) => `${fmt.int(r.prompt_tokens)} / ${fmt.int(r.completion_tokens)}`, numeric: true },
  { label: "Cost", value: (r) => fmt.usd(r.cost_usd), numeric: true },
  { label: "Cache", value: (r) => fmt.yes(r.cache_hit) },
  { label: "Fallback", value: (r) => fmt.yes(r.fallback_used) },
  { label: "Guardrails", value: (r) => r.guardrail_rules.join(", ") || "–" },
  { label: "Error", value: (r) => r.error_code ?? "–" },
];

// A feed run.state as a row of the list (the same fields, from the same fold).
function rowOfState(state, mode) {
  return {
    correlation_id: state.correlation_id,
    status: state.status,
    mode,
    provider: state.provider,
    model: state.model,
    started_at: state.started_at,
    latency_ms: state.latency_ms,
    prompt_tokens: state.usage?.prompt_tokens ?? 0,
    completion_tokens: state.usage?.completion_tokens ?? 0,
    cost_usd: state.cost_usd,
    cache_hit: state.cache_hit,
    fallback_used: state.fallback_used,
    guardrail_rules: [...new Set(state.guardrail_flags.map((f) => f.rule))].sort(),
    guardrail_blocked: state.guardrail_flags.some((f) => f.action === "block"),
    error_code: state.error?.error_code ?? null,
  };
}

const REMEMBERED = 10_000;

function remember(map, key, value) {
  map.delete(key);
  map.set(key, value);
  if (map.size > REMEMBERED) map.delete(map.keys().next().value);
}

function field(id, label, control) {
  return el("label", { for: id }, label, control);
}

// options: [[value, text]], the first selected
function choice(id, options) {
  return el("select", { id, name: id }, options.map(([v, t]) => el("option", { value: v }, t)));
}

export function runs(root, setLive) {
  const form = el("form", { class: "filters", role: "search", "aria-label": "Filter runs" },
    field("f-id", "Correlation id starts with", el("input", { id: "f-id", name: "correlation_id", type: "search", pattern: "[A-Za-z0-9_.:\\-]{1,128}" })),
    field("f-status", "Status", choice("f-status", [["", "any"], ["running", "running"], ["completed", "completed"], ["failed", "failed"]])),
    field("f-model", "Model", el("input", { id: "f-model", name: "model", size: 12 })),
    field("f-mode", "Mode", el("input", { id: "f-mode", name: "mode", size: 8 })),
    field("f-cache", "Cache hit", choice("f-cache", YES_NO)),
    field("f-fallback", "Fallback", choice("f-fallback", YES_NO)),
    field("f-blocked", "Blocked by a guardrail", choice("f-blocked", YES_NO)),
    field("f-since", "Started", choice("f-since", SINCE)),
    el("button", { type: "submit" }, "Apply"),
  );
  const list = el("div");
  const more = el("button", { type: "button", class: "secondary more", hidden: true }, "Load older runs");
  const count = el("p", { class: "muted", role: "status" });
  root.append(el("h1", {}, "Runs"), form, count, list, more);

  let filter = {};
  let cursor = null;
  let rows = new Map(); // correlation id -> row, in display order
  let tbody;
  // What the feed said, by correlation id, the latest 10,000 runs: each run's mode (from its
  // llm.request.started; a run is added live only if its start was seen) and its latest row,
  // which wins over a page row the projector had not caught up with yet.
  const modes = new Map();
  const latest = new Map();

  const readFilter = () => {
    const value = (id) => form.querySelector(`#${id}`).value.trim();
    const hours = value("f-since");
    return {
      correlation_id: value("f-id"), status: value("f-status"), model: value("f-model"),
      mode: value("f-mode"), cache_hit: value("f-cache"), fallback_used: value("f-fallback"),
      guardrail_blocked: value("f-blocked"),
      since: hours ? new Date(Date.now() - hours * 3600e3).toISOString() : "",
    };
  };
  const matches = (row) =>
    (!filter.correlation_id || row.correlation_id.startsWith(filter.correlation_id))
    && (!filter.status || row.status === filter.status)
    && (!filter.model || row.model === filter.model)
    && (!filter.mode || row.mode === filter.mode)
    && (!filter.cache_hit || String(row.cache_hit) === filter.cache_hit)
    && (!filter.fallback_used || String(row.fallback_used) === filter.fallback_used)
    && (!filter.guardrail_blocked || String(row.guardrail_blocked) === filter.guardrail_blocked)
    && (!filter.since || row.started_at >= filter.since);

  const render = () => {
    const shown = [...rows.values()];
    list.replaceChildren(table("Runs, newest first", COLUMNS, shown, (r) => ({ "data-correlation-id": r.correlation_id })));
    tbody = list.querySelector("tbody");
    count.textContent = `${shown.length} run${shown.length === 1 ? "" : "s"} shown`;
  };

  let generation = 0; // a page that answers after a newer request was made is dropped
  async function loadPage(reset) {
    if (reset) { filter = readFilter(); cursor = null; rows = new Map(); }
    const mine = ++generation;
    try {
      const page = await apiGet("/v1/runs", { ...filter, cursor, limit: 50 });
      if (mine !== generation) return;
      for (const listed of page.runs) {
        const row = latest.get(listed.correlation_id) ?? listed;
        if (!rows.has(row.correlation_id) && matches(row)) rows.set(row.correlation_id, row);
      }
      cursor = page.next_cursor;
      more.hidden = !cursor;
      render();
    } catch (error) {
      list.replaceChildren(failure(error));
    }
  }

  // A live row replaces its old one in place, or goes on top if it is new and matches; before
  // the first page has answered it waits in `rows`, which the page then joins.
  function upsert(row) {
    const id = row.correlation_id;
    const known = rows.has(id);
    if (!matches(row)) {
      if (known) { rows.delete(id); render(); }
      return;
    }
    if (known) {
      rows.set(id, { ...rows.get(id), ...row });
      const old = tbody?.querySelector(`tr[data-correlation-id="${CSS.escape(id)}"]`);
      if (old) {
        old.replaceWith(tableRow(COLUMNS, rows.get(id), { "data-correlation-id": id, class: "fresh" }));
        return;
      }
    } else {
      rows = new Map([[id, row], ...rows]);
    }
    render();
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); loadPage(true); });
  more.addEventListener("click", () => loadPage(false));
  loadPage(true);
  return openFeed({ tenant: true }, (message) => {
    if (message.type === "run.event" && message.event.event_type === "llm.request.started") {
      remember(modes, message.event.correlation_id, message.event.payload.mode);
    }
    if (message.type === "run.state" && (modes.has(message.correlation_id) || rows.has(message.correlation_id))) {
      const mode = modes.get(message.correlation_id) ?? rows.get(message.correlation_id)?.mode;
      const row = rowOfState(message.state, mode);
      remember(latest, row.correlation_id, row);
      upsert(row);
    }
  }, setLive);
}
