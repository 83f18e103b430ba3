-- Schemas only: their producers (evaluation runs, alert rules) come in later layers. Both keep
-- the latest version of a row per key, so a re-delivered or re-evaluated row replaces the old.
CREATE TABLE IF NOT EXISTS {database}.eval_results
(
    eval_run_id String,
    tenant_id LowCardinality(String),
    dataset LowCardinality(String),
    case_id String,
    evaluator LowCardinality(String),
    correlation_id String,
    provider LowCardinality(String),
    model LowCardinality(String),
    score Float64,
    passed UInt8,
    label LowCardinality(String),
    details String CODEC(ZSTD(3)),
    evaluated_at DateTime64(6, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(evaluated_at)
PARTITION BY toYYYYMM(evaluated_at)
ORDER BY (tenant_id, eval_run_id, case_id, evaluator)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {database}.alerts
(
    alert_id String,
    tenant_id LowCardinality(String),
    rule LowCardinality(String),
    severity LowCardinality(String),
    state LowCardinality(String),
    fired_at DateTime64(6, 'UTC'),
    resolved_at Nullable(DateTime64(6, 'UTC')),
    value Float64,
    threshold Float64,
    labels Map(String, String),
    message String,
    updated_at DateTime64(6, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(fired_at)
ORDER BY (tenant_id, rule, alert_id)
SETTINGS non_replicated_deduplication_window = 10000;
