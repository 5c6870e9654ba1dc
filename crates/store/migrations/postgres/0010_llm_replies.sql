-- The optimizer's LLM replies per run, so that `lightning optimize --resume` replays them instead
-- of asking again: the resumed search proposes the same candidates as the interrupted one and
-- reuses their stored evaluations (a new reply would make new candidates, evaluated anew).
-- request_key: SHA-256 of the request; occurrence: the how-many-th identical request of the run.
CREATE TABLE optimization_llm_replies (
    run_id        uuid NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
    request_key   text NOT NULL,
    occurrence    bigint NOT NULL,
    reply         text NOT NULL,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL,
    PRIMARY KEY (run_id, request_key, occurrence)
);
