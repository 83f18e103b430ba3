// Quality: offline eval runs (GET /v1/eval-runs) with each evaluator's pass rate, and one run
// beside its baseline (GET /v1/eval-runs/{baseline}/compare/{id}) with the items that regressed.
// Not live: eval runs are read when the view opens (they take minutes, not milliseconds).
import { apiGet } from "./api.js";
import { el, failure, fmt, statusBadge, table } from "./dom.js";

const link = (id) => el("a", { href: `#/quality/${encodeURIComponent(id)}` }, id);
const passRates = (run) => run.aggregates.map((a) => `${a.evaluator} ${fmt.pct(a.pass_rate)}`).join(", ") || "–";

const RUN_COLUMNS = [
  { label: "Eval run", value: (r) => link(r.eval_run_id) },
  { label: "Status", value: (r) => statusBadge(r.status) },
  { label: "Dataset", value: (r) => `${r.dataset}@${r.dataset_version}` },
  { label: "Model", value: (r) => r.model },
  { label: "Started", value: (r) => fmt.time(r.started_at) },
  { label: "Scored", value: (r) => `${fmt.int(r.scored_items)} / ${fmt.int(r.item_count)}`, numeric: true },
  { label: "Pass rate", value: passRates },
  { label: "Baseline", value: (r) => r.baseline ? link(r.baseline) : "–" },
];

const NOT_LIVE = () => {};

export function quality(root, setLive) {
  setLive("off (this view reads once when opened)");
  const body = el("div");
  root.append(el("h1", {}, "Quality"), body);
  const load = async () => {
    try {
      const runs = await apiGet("/v1/eval-runs", { limit: 100 });
      body.replaceChildren(table("Eval runs, newest first (GET /v1/eval-runs)", RUN_COLUMNS, runs,
        (r) => ({ "data-eval-run-id": r.eval_run_id })));
    } catch (error) {
      body.replaceChildren(failure(error));
    }
  };
  load();
  return NOT_LIVE;
}

export function evalRun(root, evalRunId, setLive) {
  setLive("off (this view reads once when opened)");
  const body = el("div");
  root.append(el("p", {}, el("a", { href: "#/quality" }, "← All eval runs")),
    el("h1", {}, "Eval run ", el("code", {}, evalRunId)), body);
  const load = async () => {
    try {
      const run = await apiGet(`/v1/eval-runs/${encodeURIComponent(evalRunId)}`);
      const comparison = run.baseline
        ? await apiGet(`/v1/eval-runs/${encodeURIComponent(run.baseline)}/compare/${encodeURIComponent(evalRunId)}`)
        : null;
      body.replaceChildren(...[
        table("This run", RUN_COLUMNS, [run]),
        el("h2", {}, "Evaluators"),
        table("Aggregates per evaluator, once the run completed", [
          { label: "Evaluator", value: (a) => a.evaluator },
          { label: "Items", value: (a) => fmt.int(a.items), numeric: true },
          { label: "Passed", value: (a) => fmt.int(a.passed), numeric: true },
          { label: "Pass rate", value: (a) => fmt.pct(a.pass_rate), numeric: true },
          { label: "Mean score", value: (a) => a.mean_score.toFixed(3), numeric: true },
          { label: "Baseline pass rate", value: (a) => fmt.pct(comparison?.baseline.aggregates.find((b) => b.evaluator === a.evaluator)?.pass_rate), numeric: true },
        ], run.aggregates),
        comparison && el("h2", {}, `Regressed items against ${run.baseline}: ${fmt.int(comparison.regressions_total)}`),
        comparison && table("Items that got worse (GET /v1/eval-runs/{baseline}/compare/{id})", [
          { label: "Item", value: (r) => r.item_id },
          { label: "Evaluator", value: (r) => r.evaluator },
          { label: "Score", value: (r) => `${r.baseline_score.toFixed(3)} → ${r.candidate_score.toFixed(3)}`, numeric: true },
          { label: "Run", value: (r) => el("a", { href: `#/runs/${encodeURIComponent(r.candidate_run_id)}` }, r.candidate_run_id) },
          { label: "Error", value: (r) => r.candidate_error || "–" },
        ], comparison.regressions),
      ].filter(Boolean));
    } catch (error) {
      body.replaceChildren(error.status === 404 ? el("p", { role: "alert" }, "No such eval run for this key's tenant.") : failure(error));
    }
  };
  load();
  return NOT_LIVE;
}
