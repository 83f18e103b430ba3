-- The current state of each run, folded from its events by order-independent, idempotent
-- aggregates: argMax over (terminal rank, timestamp, event_id), min, max and set unions. Any
-- delivery order, a late event or a duplicate gives the same state, and a terminal event is
-- never overtaken by a later non-terminal one. Read it through runs_latest.
CREATE TABLE IF NOT EXISTS {database}.runs
(
    tenant_id LowCardinality(String),
    correlation_id String,
    mode SimpleAggregateFunction(max, String),
    started_at SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
    last_event_at SimpleAggregateFunction(max, DateTime64(6, 'UTC')),
    attempts SimpleAggregateFunction(max, UInt32),
    streamed SimpleAggregateFunction(max, UInt8),
    cache_hit SimpleAggregateFunction(max, UInt8),
    fallback_used SimpleAggregateFunction(max, UInt8),
    guardrail_blocked SimpleAggregateFunction(max, UInt8),
    guardrail_rules AggregateFunction(groupUniqArrayArray, Array(String)),
    budget_decision AggregateFunction(argMax, String, Tuple(UInt8, DateTime64(6, 'UTC'), String)),
    target AggregateFunction(
        argMax,
        Tuple(provider String, model String),
        Tuple(UInt8, UInt8, DateTime64(6, 'UTC'), String)
    ),
    outcome AggregateFunction(
        argMax,
        Tuple(
            status String,
            ended_at DateTime64(6, 'UTC'),
            latency_ms UInt32,
            prompt_tokens UInt32,
            completion_tokens UInt32,
            cost_nanousd Int64,
            saved_cost_nanousd Int64,
            finish_reason String,
            error_code String,
            error_message String,
            output_summary String
        ),
        Tuple(UInt8, DateTime64(6, 'UTC'), String)
    )
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, correlation_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.runs_mv TO {database}.runs AS
WITH
    JSONExtract(
        payload,
        'Tuple(mode String, stream Bool, attempt UInt32, attempts UInt32, provider String, model String, chosen_provider String, chosen_model String, to_provider String, to_model String, latency_ms UInt32, prompt_tokens UInt32, completion_tokens UInt32, cost_usd Float64, saved_cost_usd Float64, cache_hit Bool, fallback_used Bool, finish_reason String, output_text String, error_code String, message String, safety_flags Array(String), rule String, action String, decision String, outcome String)'
    ) AS p,
    event_type IN ('llm.request.completed', 'llm.request.failed') AS terminal,
    (toUInt8(terminal), timestamp, event_id) AS rank,
    multiIf(
        event_type = 'router.decision.made', (p.chosen_provider, p.chosen_model),
        event_type = 'router.fallback.triggered', (p.to_provider, p.to_model),
        event_type IN ('llm.request.completed', 'llm.request.failed', 'llm.attempt.failed', 'llm.delta.generated'), (p.provider, p.model),
        event_type = 'llm.request.started', ('', p.model),
        ('', '')
    ) AS event_target
SELECT
    tenant_id,
    correlation_id,
    max(if(event_type = 'llm.request.started', p.mode, '')) AS mode,
    min(timestamp) AS started_at,
    max(timestamp) AS last_event_at,
    max(multiIf(
        terminal, p.attempts,
        event_type IN ('router.decision.made', 'llm.attempt.failed', 'llm.delta.generated'), p.attempt,
        0
    )) AS attempts,
    max(toUInt8(event_type = 'llm.request.started' AND p.stream)) AS streamed,
    max(toUInt8(
        (event_type = 'llm.request.completed' AND p.cache_hit)
        OR (event_type = 'cache.lookup.completed' AND p.outcome = 'hit')
    )) AS cache_hit,
    max(toUInt8(
        (event_type = 'llm.request.completed' AND p.fallback_used)
        OR event_type = 'router.fallback.triggered'
    )) AS fallback_used,
    max(toUInt8(event_type = 'guardrail.violation.detected' AND p.action = 'block')) AS guardrail_blocked,
    groupUniqArrayArrayState(multiIf(
        event_type = 'guardrail.violation.detected', [p.rule],
        event_type = 'llm.request.completed', p.safety_flags,
        []
    )) AS guardrail_rules,
    argMaxState(
        if(event_type = 'budget.check.completed', p.decision, ''),
        (toUInt8(event_type = 'budget.check.completed'), timestamp, event_id)
    ) AS budget_decision,
    argMaxState(
        CAST(event_target, 'Tuple(provider String, model String)'),
        (toUInt8(event_target.1 != ''), toUInt8(terminal), timestamp, event_id)
    ) AS target,
    argMaxState(
        CAST(
            (
                multiIf(event_type = 'llm.request.completed', 'completed', terminal, 'failed', 'running'),
                timestamp,
                if(terminal, p.latency_ms, 0),
                if(terminal, p.prompt_tokens, 0),
                if(terminal, p.completion_tokens, 0),
                if(terminal, toInt64(round(p.cost_usd * 1e9)), 0),
                if(terminal, toInt64(round(p.saved_cost_usd * 1e9)), 0),
                if(terminal, p.finish_reason, ''),
                if(terminal, p.error_code, ''),
                if(terminal, p.message, ''),
                if(terminal, substringUTF8(p.output_text, 1, 200), '')
            ),
            'Tuple(status String, ended_at DateTime64(6, \'UTC\'), latency_ms UInt32, prompt_tokens UInt32, completion_tokens UInt32, cost_nanousd Int64, saved_cost_nanousd Int64, finish_reason String, error_code String, error_message String, output_summary String)'
        ),
        rank
    ) AS outcome
FROM {database}.events
GROUP BY tenant_id, correlation_id;

-- One finalized row per run: what readers query (running runs have NULL ended_at/latency_ms).
CREATE VIEW IF NOT EXISTS {database}.runs_latest AS
SELECT
    tenant_id,
    correlation_id,
    argMaxMerge(outcome).status AS status,
    max(mode) AS mode,
    argMaxMerge(target).provider AS provider,
    argMaxMerge(target).model AS model,
    min(started_at) AS started_at,
    if(status = 'running', NULL, argMaxMerge(outcome).ended_at) AS ended_at,
    max(last_event_at) AS last_event_at,
    if(status = 'running', NULL, argMaxMerge(outcome).latency_ms) AS latency_ms,
    argMaxMerge(outcome).prompt_tokens AS prompt_tokens,
    argMaxMerge(outcome).completion_tokens AS completion_tokens,
    argMaxMerge(outcome).cost_nanousd / 1e9 AS cost_usd,
    argMaxMerge(outcome).saved_cost_nanousd / 1e9 AS saved_cost_usd,
    max(attempts) AS attempts,
    max(streamed) AS streamed,
    max(cache_hit) AS cache_hit,
    max(fallback_used) AS fallback_used,
    max(guardrail_blocked) AS guardrail_blocked,
    arraySort(groupUniqArrayArrayMerge(guardrail_rules)) AS guardrail_rules,
    argMaxMerge(budget_decision) AS budget_decision,
    argMaxMerge(outcome).error_code AS error_code,
    argMaxMerge(outcome).error_message AS error_message,
    argMaxMerge(outcome).finish_reason AS finish_reason,
    argMaxMerge(outcome).output_summary AS output_summary
FROM {database}.runs
GROUP BY tenant_id, correlation_id;
