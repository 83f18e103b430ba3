-- Offline evals (layer 4): datasets and eval runs as views of the events that record them.
-- dataset_versions: one row per published version (dataset.version.published), the newest
-- first when read by published_at. dataset_items: the items of every version
-- (dataset.item.recorded), in the order runs replay them. A version's items are recorded before
-- its published event on the same partition, so a version that reads as published reads whole.
CREATE TABLE IF NOT EXISTS {database}.dataset_versions
(
    tenant_id LowCardinality(String),
    dataset String,
    version String,
    item_count UInt32,
    description String,
    published_by String,
    published_at DateTime64(6, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(published_at)
ORDER BY (tenant_id, dataset, version)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.dataset_versions_mv TO {database}.dataset_versions AS
WITH
    JSONExtract(
        payload,
        'Tuple(dataset String, version String, item_count UInt32, description Nullable(String), published_by String)'
    ) AS p
SELECT
    tenant_id,
    p.dataset AS dataset,
    p.version AS version,
    p.item_count AS item_count,
    ifNull(p.description, '') AS description,
    p.published_by AS published_by,
    timestamp AS published_at,
    event_id
FROM {database}.events
WHERE event_type = 'dataset.version.published';

CREATE TABLE IF NOT EXISTS {database}.dataset_items
(
    tenant_id LowCardinality(String),
    dataset String,
    version String,
    position UInt32,
    item_id String,
    input String CODEC(ZSTD(3)),
    expected Nullable(String) CODEC(ZSTD(3)),
    rubric Nullable(String) CODEC(ZSTD(3)),
    metadata Map(String, String),
    recorded_at DateTime64(6, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (tenant_id, dataset, version, position)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.dataset_items_mv TO {database}.dataset_items AS
WITH
    JSONExtract(
        payload,
        'Tuple(dataset String, version String, position UInt32, item_id String, input_json String, expected Nullable(String), rubric Nullable(String), metadata Map(String, String))'
    ) AS p
SELECT
    tenant_id,
    p.dataset AS dataset,
    p.version AS version,
    p.position AS position,
    p.item_id AS item_id,
    p.input_json AS input,
    p.expected AS expected,
    p.rubric AS rubric,
    p.metadata AS metadata,
    timestamp AS recorded_at,
    event_id
FROM {database}.events
WHERE event_type = 'dataset.item.recorded';

-- eval_runs: one row per run, from its eval.run.started (what ran). eval_run_aggregates: one
-- row per run and evaluator, from its eval.run.completed; a run without them has not finished.
CREATE TABLE IF NOT EXISTS {database}.eval_runs
(
    tenant_id LowCardinality(String),
    eval_run_id String,
    dataset String,
    dataset_version String,
    model String,
    evaluators Array(String),
    item_count UInt32,
    baseline String,
    started_by String,
    started_at DateTime64(6, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(started_at)
ORDER BY (tenant_id, eval_run_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.eval_runs_mv TO {database}.eval_runs AS
WITH
    JSONExtract(
        payload,
        'Tuple(eval_run_id String, dataset String, dataset_version String, model String, evaluators Array(String), item_count UInt32, baseline Nullable(String), started_by String)'
    ) AS p
SELECT
    tenant_id,
    p.eval_run_id AS eval_run_id,
    p.dataset AS dataset,
    p.dataset_version AS dataset_version,
    p.model AS model,
    p.evaluators AS evaluators,
    p.item_count AS item_count,
    ifNull(p.baseline, '') AS baseline,
    p.started_by AS started_by,
    timestamp AS started_at,
    event_id
FROM {database}.events
WHERE event_type = 'eval.run.started';

CREATE TABLE IF NOT EXISTS {database}.eval_run_aggregates
(
    tenant_id LowCardinality(String),
    eval_run_id String,
    evaluator String,
    items UInt32,
    passed UInt32,
    pass_rate Float64,
    mean_score Float64,
    item_count UInt32,
    failed_calls UInt32,
    completed_at DateTime64(6, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(completed_at)
ORDER BY (tenant_id, eval_run_id, evaluator)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.eval_run_aggregates_mv TO {database}.eval_run_aggregates AS
SELECT
    tenant_id,
    JSONExtractString(payload, 'eval_run_id') AS eval_run_id,
    aggregate.1 AS evaluator,
    aggregate.2 AS items,
    aggregate.3 AS passed,
    aggregate.4 AS pass_rate,
    aggregate.5 AS mean_score,
    JSONExtract(payload, 'item_count', 'UInt32') AS item_count,
    JSONExtract(payload, 'failed_calls', 'UInt32') AS failed_calls,
    timestamp AS completed_at,
    event_id
FROM {database}.events
ARRAY JOIN
    JSONExtract(
        payload,
        'aggregates',
        'Array(Tuple(evaluator String, items UInt32, passed UInt32, pass_rate Float64, mean_score Float64))'
    ) AS aggregate
WHERE event_type = 'eval.run.completed';

-- Each replayed item's verdicts (eval.item.scored) into eval_results: one row per run, item and
-- evaluator (eval_run_id the run, case_id the item, correlation_id the chat run that answered);
-- details holds the answer or the error, so a regression can be read without another query.
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.eval_offline_mv TO {database}.eval_results AS
WITH
    JSONExtract(
        payload,
        'Tuple(eval_run_id String, dataset String, item_id String, run_id Nullable(String), provider Nullable(String), model Nullable(String), output Nullable(String), error_code Nullable(String), error_message Nullable(String), latency_ms Nullable(Int32))'
    ) AS p
SELECT
    p.eval_run_id AS eval_run_id,
    tenant_id,
    p.dataset AS dataset,
    p.item_id AS case_id,
    verdict.1 AS evaluator,
    ifNull(p.run_id, '') AS correlation_id,
    ifNull(p.provider, '') AS provider,
    ifNull(p.model, '') AS model,
    verdict.2 AS score,
    toUInt8(verdict.3) AS passed,
    ifNull(verdict.4, '') AS label,
    toJSONString(
        map(
            'output', ifNull(p.output, ''),
            'error_code', ifNull(p.error_code, ''),
            'error_message', ifNull(p.error_message, ''),
            'latency_ms', toString(ifNull(p.latency_ms, 0))
        )
    ) AS details,
    timestamp AS evaluated_at,
    event_id
FROM {database}.events
ARRAY JOIN
    JSONExtract(
        payload,
        'results',
        'Array(Tuple(evaluator String, score Float64, passed Bool, label Nullable(String)))'
    ) AS verdict
WHERE event_type = 'eval.item.scored';
