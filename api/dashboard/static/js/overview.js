// Overview: the tenant's traffic over a chosen window, every number from /v1/analytics/* and
// /v1/alerts; it reloads itself when the feed says runs ended or alerts changed.
import { apiGet, openFeed } from "./api.js";
import { timeChart } from "./charts.js";
import { el, failure, fmt, table } from "./dom.js";

const RANGES = {
  "1h": { hours: 1, interval: "minute", label: "last hour" },
  "6h": { hours: 6, interval: "minute", label: "last 6 hours" },
  "24h": { hours: 24, interval: "hour", label: "last 24 hours" },
  "7d": { hours: 168, interval: "hour", label: "last 7 days" },
};
const RELOAD_AFTER_MS = 1500; // the projector's usual lag behind the feed

function select(id, label, options, value, onChange) {
  return el("label", { for: id }, label,
    el("select", { id, onchange: (e) => onChange(e.target.value) },
      options.map(([v, text]) => el("option", { value: v, selected: v === value }, text))));
}

export function overview(root, setLive) {
  const state = { range: "24h", target: "" }; // target: "", "provider:x" or "model:x"
  let targets = [];
  const filters = el("form", { class: "filters", "aria-label": "Overview filters", onsubmit: (e) => e.preventDefault() });
  const body = el("div", { "aria-busy": "true" });
  root.append(el("h1", {}, "Overview"), filters, body);

  const renderFilters = () => filters.replaceChildren(
    select("range", "Time range", Object.entries(RANGES).map(([k, r]) => [k, r.label]), state.range, (v) => { state.range = v; load(); }),
    select("target", "Provider or model", [["", "all"], ...targets], state.target, (v) => { state.target = v; load(); }),
  );

  async function load() {
    const range = RANGES[state.range];
    const end = new Date();
    const window = { start: new Date(end - range.hours * 3600e3).toISOString(), end: end.toISOString() };
    const colon = state.target.indexOf(":"); // "provider:x" or "model:x" (names may hold ":")
    const series = { ...window, interval: range.interval };
    if (colon > 0) series[state.target.slice(0, colon)] = state.target.slice(colon + 1);
    body.setAttribute("aria-busy", "true");
    try {
      const [latency, errors, cache, byModel, guardrails, alerts] = await Promise.all([
        apiGet("/v1/analytics/latency", series),
        apiGet("/v1/analytics/errors", series),
        apiGet("/v1/analytics/cache", series),
        apiGet("/v1/analytics/cost", { ...window, group_by: "model" }),
        apiGet("/v1/analytics/guardrails", window),
        apiGet("/v1/alerts", { state: "firing" }),
      ]);
      targets = [
        ...new Set(byModel.groups.map((g) => `provider:${g.provider}`)),
        ...byModel.groups.map((g) => `model:${g.model}`),
      ].map((t) => [t, t.replace(":", ": ")]);
      renderFilters();
      body.replaceChildren(...sections(latency, errors, cache, byModel, guardrails, alerts));
    } catch (error) {
      body.replaceChildren(failure(error));
    }
    body.setAttribute("aria-busy", "false");
  }

  renderFilters();
  load();
  let pending;
  const close = openFeed({ tenant: true }, (message) => {
    const ended = message.type === "run.state" && message.state.status !== "running";
    if ((ended || message.type.startsWith("alert.")) && !pending) {
      pending = setTimeout(() => { pending = undefined; load(); }, RELOAD_AFTER_MS);
    }
  }, setLive);
  return () => { close(); clearTimeout(pending); };
}

function sections(latency, errors, cache, byModel, guardrails, alerts) {
  const e = errors.total;
  const tokens = byModel.total.prompt_tokens + byModel.total.completion_tokens;
  const tile = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));
  const codes = Object.entries(e.errors_by_code).map(([code, count]) => ({ code, count }));
  return [
    el("dl", { class: "tiles", "aria-label": "Totals over the window" },
      tile("Requests", fmt.int(e.requests)),
      tile("Errors", `${fmt.int(e.errors)} (${fmt.pct(e.error_rate)})`),
      tile("Latency p50", fmt.ms(latency.total.p50_ms)),
      tile("Latency p95", fmt.ms(latency.total.p95_ms)),
      tile("Latency p99", fmt.ms(latency.total.p99_ms)),
      tile("Tokens", fmt.int(tokens)),
      tile("Cost", fmt.usd(byModel.total.cost_usd)),
      tile("Cache hit ratio", fmt.pct(cache.total.hit_ratio)),
      tile("Saved by cache", fmt.usd(cache.total.saved_cost_usd)),
      tile("Fallback rate", fmt.pct(e.fallback_rate)),
      tile("Open alerts", fmt.int(alerts.alerts.length)),
    ),
    el("div", { class: "charts" },
      timeChart("Requests and errors", errors.series, [
        { label: "requests", value: (p) => p.requests },
        { label: "errors", value: (p) => p.errors },
      ], fmt.int),
      timeChart("Latency of completed requests", latency.series, [
        { label: "p50", value: (p) => p.p50_ms },
        { label: "p95", value: (p) => p.p95_ms },
        { label: "p99", value: (p) => p.p99_ms },
      ], fmt.ms),
      timeChart("Cache hit ratio and fallback rate", cache.series.map((p, i) => ({ ...p, fallback_rate: errors.series[i].fallback_rate })), [
        { label: "cache hit ratio", value: (p) => p.hit_ratio },
        { label: "fallback rate", value: (p) => p.fallback_rate },
      ], fmt.pct, true),
    ),
    el("h2", {}, "Open alerts"),
    table("Firing alerts, latest first (GET /v1/alerts)", [
      { label: "Rule", value: (a) => a.rule },
      { label: "Severity", value: (a) => a.severity },
      { label: "Fired", value: (a) => fmt.time(a.fired_at) },
      { label: "Value", value: (a) => a.value.toPrecision(3), numeric: true },
      { label: "Threshold", value: (a) => a.threshold.toPrecision(3), numeric: true },
      { label: "Message", value: (a) => a.message },
    ], alerts.alerts),
    el("h2", {}, "Cost and tokens by model"),
    table("By provider and model (GET /v1/analytics/cost)", [
      { label: "Provider", value: (g) => g.provider },
      { label: "Model", value: (g) => g.model },
      { label: "Requests", value: (g) => fmt.int(g.requests), numeric: true },
      { label: "Tokens in/out", value: (g) => `${fmt.int(g.prompt_tokens)} / ${fmt.int(g.completion_tokens)}`, numeric: true },
      { label: "Cost", value: (g) => fmt.usd(g.cost_usd), numeric: true },
      { label: "Saved by cache", value: (g) => fmt.usd(g.saved_cost_usd), numeric: true },
    ], byModel.groups),
    el("div", { class: "grid2" },
      el("section", { "aria-labelledby": "h-errors" }, el("h2", { id: "h-errors" }, "Errors by code"),
        table("Failed requests by error code (GET /v1/analytics/errors)", [
          { label: "Code", value: (c) => c.code },
          { label: "Requests", value: (c) => fmt.int(c.count), numeric: true },
        ], codes)),
      el("section", { "aria-labelledby": "h-guard" }, el("h2", { id: "h-guard" }, "Guardrail rules"),
        table("Most violated rules (GET /v1/analytics/guardrails)", [
          { label: "Rule", value: (r) => r.rule },
          { label: "Stage", value: (r) => r.stage },
          { label: "Action", value: (r) => r.action },
          { label: "Violations", value: (r) => fmt.int(r.violations), numeric: true },
        ], guardrails.rules)),
    ),
  ];
}
