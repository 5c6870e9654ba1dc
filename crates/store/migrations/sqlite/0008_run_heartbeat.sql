-- Liveness and spend of optimization runs (issue 16): a heartbeat written at every save, so a
-- run whose process died shows `stale`; the spend (optimizer LLM calls plus the evaluations'
-- reported cost) and the LLM tokens. The heartbeat is Unix milliseconds on both backends.
ALTER TABLE optimization_runs ADD COLUMN heartbeat_ms integer;
ALTER TABLE optimization_runs ADD COLUMN cost_usd real;
ALTER TABLE optimization_runs ADD COLUMN input_tokens integer;
ALTER TABLE optimization_runs ADD COLUMN output_tokens integer;
