-- Layer 4's alerting reads: latency by bucket (for latency SLOs: the share of runs under a
-- threshold) and attempt failures by kind (a provider timeout spike) in metrics_minute, and the
-- alert events (alert.rule.triggered|resolved) projected into alerts, one row per alert whose
-- latest event wins. Buckets are upper bounds in ms, 4294967295 for slower than the last; a
-- latency SLO's threshold is one of them. The view is recreated with the new columns: the
-- projector migrates before it consumes, so no event passes between the two statements.
ALTER TABLE {database}.metrics_minute
    ADD COLUMN IF NOT EXISTS latency_buckets SimpleAggregateFunction(sumMap, Map(UInt32, UInt64)),
    ADD COLUMN IF NOT EXISTS attempt_failures_by_kind SimpleAggregateFunction(sumMap, Map(String, UInt64));

DROP VIEW IF EXISTS {database}.metrics_minute_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.metrics_minute_mv TO {database}.metrics_minute AS
WITH
    JSONExtract(
        payload,
        'Tuple(provider String, model String, from_provider String, from_model String, latency_ms UInt32, prompt_tokens UInt32, completion_tokens UInt32, cost_usd Float64, saved_cost_usd Float64, cache_hit Bool, error_code String, decision String, failure_kind String)'
    ) AS p,
    event_type = 'llm.request.completed' AS completed,
    event_type = 'llm.request.failed' AS failed,
    arrayFirst(
        bound -> p.latency_ms <= bound,
        [50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 4294967295]
    ) AS latency_bucket
SELECT
    toStartOfMinute(timestamp) AS minute,
    tenant_id,
    if(event_type = 'router.fallback.triggered', p.from_provider, p.provider) AS provider,
    if(event_type = 'router.fallback.triggered', p.from_model, p.model) AS model,
    countIf(completed OR failed) AS requests,
    countIf(failed) AS errors,
    sumMapIf(map(p.error_code, toUInt64(1)), failed) AS errors_by_code,
    quantilesExactIfState(0.5, 0.95, 0.99)(p.latency_ms, completed) AS latency_ms,
    sumIf(toUInt64(p.prompt_tokens), completed) AS prompt_tokens,
    sumIf(toUInt64(p.completion_tokens), completed) AS completion_tokens,
    sumIf(toInt64(round(p.cost_usd * 1e9)), completed) AS cost_nanousd,
    sumIf(toInt64(round(p.saved_cost_usd * 1e9)), completed) AS saved_cost_nanousd,
    countIf(completed AND p.cache_hit) AS cache_hits,
    countIf(event_type = 'router.fallback.triggered') AS fallbacks,
    countIf(event_type = 'llm.attempt.failed') AS attempt_failures,
    countIf(event_type = 'guardrail.violation.detected') AS guardrail_violations,
    countIf(event_type = 'budget.check.completed' AND p.decision = 'rejected') AS budget_rejections,
    sumMapIf(map(toUInt32(latency_bucket), toUInt64(1)), completed) AS latency_buckets,
    sumMapIf(map(p.failure_kind, toUInt64(1)), event_type = 'llm.attempt.failed')
        AS attempt_failures_by_kind
FROM {database}.events
WHERE event_type IN (
    'llm.request.completed', 'llm.request.failed', 'llm.attempt.failed',
    'router.fallback.triggered', 'guardrail.violation.detected', 'budget.check.completed'
)
GROUP BY minute, tenant_id, provider, model;

ALTER TABLE {database}.alerts
    ADD COLUMN IF NOT EXISTS alert_key String,
    ADD COLUMN IF NOT EXISTS kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS indicator LowCardinality(String);

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.alerts_mv TO {database}.alerts AS
WITH
    JSONExtract(
        payload,
        'Tuple(alert_id String, alert_key String, rule String, kind String, severity String, indicator String, labels Map(String, String), value Float64, threshold Float64, fired_at String, message String)'
    ) AS p,
    event_type = 'alert.rule.resolved' AS resolved
SELECT
    p.alert_id AS alert_id,
    tenant_id,
    p.rule AS rule,
    p.severity AS severity,
    if(resolved, 'resolved', 'firing') AS state,
    parseDateTime64BestEffort(p.fired_at, 6, 'UTC') AS fired_at,
    if(resolved, toNullable(timestamp), NULL) AS resolved_at,
    p.value AS value,
    p.threshold AS threshold,
    p.labels AS labels,
    p.message AS message,
    timestamp AS updated_at,
    event_id,
    p.alert_key AS alert_key,
    p.kind AS kind,
    p.indicator AS indicator
FROM {database}.events
WHERE event_type IN ('alert.rule.triggered', 'alert.rule.resolved');
