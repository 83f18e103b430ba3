-- Scores given to runs (eval.score.recorded, from users through the API) into eval_results:
-- one row per score id (eval_run_id 'scores', case_id the score id, evaluator 'user:<name>'),
-- so a score sent again with the same id replaces the old one. passed: the value is positive
-- (thumbs up), or no value was given (a label alone).
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.eval_scores_mv TO {database}.eval_results AS
WITH
    JSONExtract(
        payload,
        'Tuple(score_id String, name String, value Nullable(Float64), label Nullable(String), comment Nullable(String), source String, scored_by String)'
    ) AS p
SELECT
    'scores' AS eval_run_id,
    tenant_id,
    '' AS dataset,
    p.score_id AS case_id,
    concat(p.source, ':', p.name) AS evaluator,
    correlation_id,
    '' AS provider,
    '' AS model,
    ifNull(p.value, 0) AS score,
    toUInt8(isNull(p.value) OR p.value > 0) AS passed,
    ifNull(p.label, '') AS label,
    toJSONString(map('comment', ifNull(p.comment, ''), 'scored_by', p.scored_by)) AS details,
    timestamp AS evaluated_at,
    event_id
FROM {database}.events
WHERE event_type = 'eval.score.recorded';
