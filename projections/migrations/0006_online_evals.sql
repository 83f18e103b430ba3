-- The online evaluators' verdicts (eval.result.recorded, one event per judged run) into
-- eval_results: one row per run and evaluator (eval_run_id 'online', case_id the run), so a
-- redelivered event replaces its rows.
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.eval_online_mv TO {database}.eval_results AS
SELECT
    'online' AS eval_run_id,
    tenant_id,
    '' AS dataset,
    correlation_id AS case_id,
    verdict.1 AS evaluator,
    correlation_id,
    ifNull(JSONExtract(payload, 'provider', 'Nullable(String)'), '') AS provider,
    ifNull(JSONExtract(payload, 'model', 'Nullable(String)'), '') AS model,
    verdict.2 AS score,
    toUInt8(verdict.3) AS passed,
    ifNull(verdict.4, '') AS label,
    '' AS details,
    timestamp AS evaluated_at,
    event_id
FROM {database}.events
ARRAY JOIN
    JSONExtract(
        payload,
        'results',
        'Array(Tuple(evaluator String, score Float64, passed Bool, label Nullable(String)))'
    ) AS verdict
WHERE event_type = 'eval.result.recorded';
