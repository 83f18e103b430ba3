-- Every envelope from every events.* topic, as it was on the wire: typed envelope columns and
-- the payload as JSON text. The sorting key starts with (tenant_id, correlation_id), so a run's
-- events and the projector's duplicate check read a few granules. Duplicates are dropped
-- before insert (docs/PROJECTIONS.md); ReplacingMergeTree on the key with event_id is the
-- second line of defence. Day partitions let the TTL drop whole parts. batch_id (a hash of the
-- insert's deduplication token) names the insert that wrote the row: a retried insert ignores
-- its own rows when it looks for duplicates. It is bookkeeping, left out of checksums.
CREATE TABLE IF NOT EXISTS {database}.events
(
    event_id String,
    event_type LowCardinality(String),
    schema_version UInt16,
    timestamp DateTime64(6, 'UTC'),
    layer UInt8,
    service_name LowCardinality(String),
    env LowCardinality(String),
    trace_id Nullable(String),
    span_id Nullable(String),
    correlation_id String,
    tenant_id LowCardinality(String),
    causation_id Nullable(String),
    payload String CODEC(ZSTD(3)),
    batch_id UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (tenant_id, correlation_id, event_id)
TTL toDateTime(timestamp) + INTERVAL {events_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;
