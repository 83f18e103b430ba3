-- Retrieval (layer 3): the tenants' documents as views of the events that index them.
-- rag_documents: one row per document and version (retrieval.document.indexed) or deletion
-- (retrieval.document.deleted); a document's current state is its latest row, with its chunk
-- count and the sum of its chunks' term counts (BM25's collection statistics).
-- rag_chunks: each version's chunks with their vectors (HNSW index, ClickHouse 25.8 or later).
-- rag_postings: each chunk's terms with their counts, sorted by term, for BM25.
-- Queries keep the chunks of each document's current version only, so an update or a delete
-- takes effect without rewriting rows. groundings: each mode rag answer's grounding check.
CREATE TABLE IF NOT EXISTS {database}.rag_documents
(
    tenant_id LowCardinality(String),
    collection String,
    document_id String,
    content_hash String,
    title String,
    metadata Map(String, String),
    chunk_count UInt32,
    term_total UInt64,
    deleted UInt8,
    changed_at DateTime64(6, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(changed_at)
ORDER BY (tenant_id, collection, document_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.rag_documents_mv TO {database}.rag_documents AS
WITH
    JSONExtract(
        payload,
        'Tuple(collection String, document_id String, content_hash Nullable(String), title Nullable(String), metadata Map(String, String), chunks Array(Tuple(chunk_index Int32, terms Array(String))))'
    ) AS p
SELECT
    tenant_id,
    p.collection AS collection,
    p.document_id AS document_id,
    ifNull(p.content_hash, '') AS content_hash,
    ifNull(p.title, '') AS title,
    p.metadata AS metadata,
    length(p.chunks) AS chunk_count,
    arraySum(arrayMap(c -> length(c.2), p.chunks)) AS term_total,
    toUInt8(event_type = 'retrieval.document.deleted') AS deleted,
    timestamp AS changed_at,
    event_id
FROM {database}.events
WHERE event_type = 'retrieval.document.deleted'
    OR (event_type = 'retrieval.document.indexed' AND NOT JSONExtractBool(payload, 'unchanged'));

CREATE TABLE IF NOT EXISTS {database}.rag_chunks
(
    tenant_id LowCardinality(String),
    collection String,
    document_id String,
    content_hash String,
    chunk_index UInt32,
    text String CODEC(ZSTD(3)),
    start UInt32,
    end UInt32,
    heading String,
    title String,
    metadata Map(String, String),
    term_count UInt32,
    embedding Array(Float32),
    indexed_at DateTime64(6, 'UTC'),
    INDEX embedding_hnsw embedding TYPE vector_similarity('hnsw', 'cosineDistance', 384)
)
ENGINE = ReplacingMergeTree(indexed_at)
ORDER BY (tenant_id, collection, document_id, content_hash, chunk_index)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.rag_chunks_mv TO {database}.rag_chunks AS
WITH
    JSONExtract(
        payload,
        'Tuple(collection String, document_id String, content_hash String, title Nullable(String), metadata Map(String, String))'
    ) AS p
SELECT
    tenant_id,
    p.collection AS collection,
    p.document_id AS document_id,
    p.content_hash AS content_hash,
    toUInt32(chunk.1) AS chunk_index,
    chunk.2 AS text,
    toUInt32(chunk.3) AS start,
    toUInt32(chunk.4) AS end,
    ifNull(chunk.5, '') AS heading,
    ifNull(p.title, '') AS title,
    p.metadata AS metadata,
    length(chunk.6) AS term_count,
    chunk.7 AS embedding,
    timestamp AS indexed_at
FROM {database}.events
ARRAY JOIN
    JSONExtract(
        payload,
        'chunks',
        'Array(Tuple(chunk_index Int32, text String, start Int32, end Int32, heading Nullable(String), terms Array(String), embedding Array(Float32)))'
    ) AS chunk
WHERE event_type = 'retrieval.document.indexed';

CREATE TABLE IF NOT EXISTS {database}.rag_postings
(
    tenant_id LowCardinality(String),
    collection String,
    term String,
    document_id String,
    content_hash String,
    chunk_index UInt32,
    tf UInt32,
    term_count UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, collection, term, document_id, content_hash, chunk_index)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.rag_postings_mv TO {database}.rag_postings AS
WITH
    JSONExtract(payload, 'Tuple(collection String, document_id String, content_hash String)') AS p
SELECT
    tenant_id,
    p.collection AS collection,
    posting.1 AS term,
    p.document_id AS document_id,
    p.content_hash AS content_hash,
    toUInt32(chunk.1) AS chunk_index,
    toUInt32(posting.2) AS tf,
    length(chunk.2) AS term_count
FROM {database}.events
ARRAY JOIN
    JSONExtract(
        payload, 'chunks', 'Array(Tuple(chunk_index Int32, terms Array(String)))'
    ) AS chunk
ARRAY JOIN
    arrayMap(t -> (t, countEqual(chunk.2, t)), arrayDistinct(chunk.2)) AS posting
WHERE event_type = 'retrieval.document.indexed';

CREATE TABLE IF NOT EXISTS {database}.groundings
(
    tenant_id LowCardinality(String),
    correlation_id String,
    detector LowCardinality(String),
    grounding_score Float64,
    sentence_count UInt32,
    unsupported Array(Tuple(sentence_index UInt32, start UInt32, end UInt32, score Float64, reasons Array(String), cited Array(Int32))),
    checked_at DateTime64(6, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(checked_at)
ORDER BY (tenant_id, correlation_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.groundings_mv TO {database}.groundings AS
SELECT
    tenant_id,
    correlation_id,
    JSONExtractString(payload, 'detector') AS detector,
    JSONExtractFloat(payload, 'grounding_score') AS grounding_score,
    JSONExtractUInt(payload, 'sentence_count') AS sentence_count,
    JSONExtract(
        payload,
        'unsupported',
        'Array(Tuple(sentence_index UInt32, start UInt32, end UInt32, score Float64, reasons Array(String), cited Array(Int32)))'
    ) AS unsupported,
    timestamp AS checked_at,
    event_id
FROM {database}.events
WHERE event_type = 'hallucination.check.completed';
