CREATE TABLE optimization_runs (
    id                uuid PRIMARY KEY,
    agent_id          text NOT NULL,
    status            text NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    config            jsonb NOT NULL,
    baseline_score    double precision,
    best_score        double precision,
    best_candidate_id uuid,
    trajectories      bigint NOT NULL DEFAULT 0,
    llm_calls         bigint NOT NULL DEFAULT 0,
    evaluations       bigint NOT NULL DEFAULT 0,
    error             text
);

CREATE INDEX optimization_runs_started_idx ON optimization_runs (started_at DESC, id DESC);
CREATE INDEX optimization_runs_agent_started_idx ON optimization_runs (agent_id, started_at DESC, id DESC);

CREATE TABLE prompt_candidates (
    id               uuid PRIMARY KEY,
    run_id           uuid NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
    parent_id        uuid,
    round            bigint NOT NULL,
    prompt           text NOT NULL,
    critique         text,
    minibatch_score  double precision,
    validation_score double precision,
    evaluations      bigint NOT NULL DEFAULT 0,
    status           text NOT NULL,
    created_at       timestamptz NOT NULL
);

CREATE INDEX prompt_candidates_run_idx ON prompt_candidates (run_id, round, created_at, id);

-- The prompt registry: versions 1, 2, 3, ... per agent; at most one promoted per agent.
CREATE TABLE prompts (
    agent_id      text NOT NULL,
    version       bigint NOT NULL,
    text          text NOT NULL,
    source_run_id uuid,
    note          text,
    promoted      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE UNIQUE INDEX prompts_one_promoted_idx ON prompts (agent_id) WHERE promoted;
