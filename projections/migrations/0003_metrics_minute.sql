-- Per minute x tenant x provider x model. Every column is an integer sum or an exact quantile
-- state, so the result does not depend on the order or grouping of inserts, and a rebuild gives
-- the same numbers. Cost is summed in integer nano-dollars (never float sums). Events that name
-- no target (guardrail violations, budget rejections, runs that failed before a call) count
-- under provider = '' and model = ''; fallbacks count under the target given up on.
CREATE TABLE IF NOT EXISTS {database}.metrics_minute
(
    minute DateTime('UTC'),
    tenant_id LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    requests SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    errors_by_code SimpleAggregateFunction(sumMap, Map(String, UInt64)),
    latency_ms AggregateFunction(quantilesExact(0.5, 0.95, 0.99), UInt32),
    prompt_tokens SimpleAggregateFunction(sum, UInt64),
    completion_tokens SimpleAggregateFunction(sum, UInt64),
    cost_nanousd SimpleAggregateFunction(sum, Int64),
    saved_cost_nanousd SimpleAggregateFunction(sum, Int64),
    cache_hits SimpleAggregateFunction(sum, UInt64),
    fallbacks SimpleAggregateFunction(sum, UInt64),
    attempt_failures SimpleAggregateFunction(sum, UInt64),
    guardrail_violations SimpleAggregateFunction(sum, UInt64),
    budget_rejections SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant_id, minute, provider, model)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.metrics_minute_mv TO {database}.metrics_minute AS
WITH
    JSONExtract(
        payload,
        'Tuple(provider String, model String, from_provider String, from_model String, latency_ms UInt32, prompt_tokens UInt32, completion_tokens UInt32, cost_usd Float64, saved_cost_usd Float64, cache_hit Bool, error_code String, decision String)'
    ) AS p,
    event_type = 'llm.request.completed' AS completed,
    event_type = 'llm.request.failed' AS failed
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
    countIf(event_type = 'budget.check.completed' AND p.decision = 'rejected') AS budget_rejections
FROM {database}.events
WHERE event_type IN (
    'llm.request.completed', 'llm.request.failed', 'llm.attempt.failed',
    'router.fallback.triggered', 'guardrail.violation.detected', 'budget.check.completed'
)
GROUP BY minute, tenant_id, provider, model;
