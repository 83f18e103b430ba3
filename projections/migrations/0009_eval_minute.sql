-- Online verdicts per minute x tenant x evaluator x provider x model, for eval pass-rate SLOs
-- (layer 4's alerter): integer sums, so the order and grouping of inserts change nothing, like
-- metrics_minute; each event is inserted once (the projector drops redeliveries).
CREATE TABLE IF NOT EXISTS {database}.eval_minute
(
    minute DateTime('UTC'),
    tenant_id LowCardinality(String),
    evaluator LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    verdicts SimpleAggregateFunction(sum, UInt64),
    failed SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant_id, minute, evaluator, provider, model)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.eval_minute_mv TO {database}.eval_minute AS
SELECT
    toStartOfMinute(timestamp) AS minute,
    tenant_id,
    verdict.1 AS evaluator,
    ifNull(JSONExtract(payload, 'provider', 'Nullable(String)'), '') AS provider,
    ifNull(JSONExtract(payload, 'model', 'Nullable(String)'), '') AS model,
    count() AS verdicts,
    countIf(NOT verdict.2) AS failed
FROM {database}.events
ARRAY JOIN
    JSONExtract(payload, 'results', 'Array(Tuple(evaluator String, passed Bool))') AS verdict
WHERE event_type = 'eval.result.recorded'
GROUP BY minute, tenant_id, evaluator, provider, model;
