// One run: GET /v1/runs/{id} (state, events, waterfall, decisions, verdicts), reloaded when the
// feed says its state changed. Guardrail violations show rule and positions, never the text:
// the events carry only positions and a hash.
import { apiGet, openFeed } from "./api.js";
import { el, failure, fmt, statusBadge, table } from "./dom.js";

export function run(root, correlationId, setLive) {
  const body = el("div", { "aria-busy": "true" });
  root.append(
    el("p", {}, el("a", { href: "#/runs" }, "← All runs")),
    el("h1", {}, "Run ", el("code", {}, correlationId)),
    body,
  );
  async function load() {
    try {
      const view = await apiGet(`/v1/runs/${encodeURIComponent(correlationId)}`);
      body.replaceChildren(...sections(view));
    } catch (error) {
      body.replaceChildren(error.status === 404 ? el("p", { role: "alert" }, "No such run for this key's tenant.") : failure(error));
    }
    body.setAttribute("aria-busy", "false");
  }
  load();
  return openFeed({ correlation_ids: [correlationId] }, (message) => {
    if (message.type === "run.state") load();
  }, setLive);
}

function offsetMs(view, iso) {
  return Date.parse(iso) - Date.parse(view.started_at);
}

function sections(view) {
  const item = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));
  const usage = view.usage ?? {};
  const violations = view.events.filter((e) => e.event_type === "guardrail.violation.detected");
  const attempts = view.events.filter((e) => ["llm.attempt.failed", "router.fallback.triggered"].includes(e.event_type));
  const span = Math.max(1, ...view.waterfall.map((s) => s.end_ms));
  const parts = [
    el("dl", { class: "summary", "aria-label": "Run summary" },
      item("Status", statusBadge(view.status)),
      item("Started", fmt.time(view.started_at)),
      item("Latency", fmt.ms(view.latency_ms)),
      item("Provider / model", `${view.provider ?? "–"} / ${view.model ?? "–"}`),
      item("Attempts", fmt.int(view.attempts)),
      item("Cache hit", fmt.yes(view.cache_hit)),
      item("Fallback used", fmt.yes(view.fallback_used)),
      item("Tokens in/out", `${fmt.int(usage.prompt_tokens)} / ${fmt.int(usage.completion_tokens)}`),
      item("Cost", fmt.usd(view.cost_usd)),
      item("Saved by cache", fmt.usd(view.saved_cost_usd)),
    ),
    view.error && el("p", { class: "error", role: "alert" }, `${view.error.error_code}: ${view.error.message}`),
    view.output && el("section", { "aria-labelledby": "h-answer" },
      el("h2", { id: "h-answer" }, "Answer"),
      el("div", { class: "answer" }, view.output.text ?? JSON.stringify(view.output.tool_calls, null, 2))),
    el("h2", {}, "Guardrail violations"),
    table("Violations: rule and character positions only (no raw values are stored)", [
      { label: "Stage", value: (e) => e.payload.stage },
      { label: "Policy", value: (e) => e.payload.policy },
      { label: "Rule", value: (e) => e.payload.rule },
      { label: "Action", value: (e) => e.payload.action },
      { label: "Spans", value: (e) => e.payload.spans.map((s) => `message ${s.message_index}: ${s.start}–${s.end}`).join(", ") || "–" },
    ], violations),
    el("h2", {}, "Router decisions, attempts and fallbacks"),
    table("Router decisions, by attempt", [
      { label: "Attempt", value: (d) => d.attempt, numeric: true },
      { label: "Route", value: (d) => d.route_id },
      { label: "Strategy", value: (d) => d.strategy },
      { label: "Target", value: (d) => `${d.provider} / ${d.model}` },
      { label: "Reason", value: (d) => d.reason },
    ], view.router_decisions),
    attempts.length > 0 && table("Failed attempts and fallbacks", [
      { label: "At", value: (e) => `+${offsetMs(view, e.timestamp)} ms`, numeric: true },
      { label: "Event", value: (e) => e.event_type },
      { label: "Detail", value: (e) => e.payload.failure_kind ?? `${e.payload.from_provider}/${e.payload.from_model} → ${e.payload.to_provider}/${e.payload.to_model}` },
    ], attempts),
    el("h2", {}, "Evaluations and scores"),
    table("Online evaluator verdicts and scores", [
      { label: "Name", value: (v) => v.evaluator ?? v.name },
      { label: "Verdict", value: (v) => v.passed === undefined ? (v.label ?? "–") : (v.passed ? "pass" : "fail") },
      { label: "Score", value: (v) => (v.score ?? v.value ?? "–"), numeric: true },
      { label: "Source", value: (v) => v.source ?? "online" },
    ], [...view.evals, ...view.scores]),
    el("h2", {}, "Trace waterfall"),
    table("Spans that wrote events, ms from the run's first event", [
      { label: "Service", value: (s) => s.service },
      { label: "Start", value: (s) => fmt.ms(s.start_ms), numeric: true },
      { label: "End", value: (s) => fmt.ms(s.end_ms), numeric: true },
      { label: "Timeline", value: (s) => el("div", { class: "bar", role: "img", "aria-label": `${s.start_ms} to ${s.end_ms} ms` },
        el("span", { style: `left:${(s.start_ms / span) * 100}%;width:${((s.end_ms - s.start_ms) / span) * 100}%` })) },
      { label: "Events", value: (s) => s.events.join(", ") },
    ], view.waterfall, () => ({ class: "waterfall" })),
    el("h2", {}, "Event timeline"),
    el("ol", { class: "timeline", "aria-label": "Events in order" },
      view.events.map((e) => el("li", {},
        el("time", { datetime: e.timestamp }, `+${offsetMs(view, e.timestamp)} ms`), " ",
        el("code", {}, e.event_type), " ", el("span", { class: "muted" }, e.service_name)))),
    view.truncated && el("p", { class: "muted" }, "Only the first events are shown (history limit)."),
  ];
  return parts.filter(Boolean);
}
