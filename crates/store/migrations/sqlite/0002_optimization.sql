-- Same conventions as 0001: timestamps are fixed-width RFC 3339 text, JSON is JSON text,
-- ids are lowercase hyphenated UUID text, booleans are 0/1 integers.
CREATE TABLE optimization_runs (
    id                text PRIMARY KEY,
    agent_id          text NOT NULL,
    status            text NOT NULL,
    started_at        text NOT NULL,
    finished_at       text,
    config            text NOT NULL,
    baseline_score    real,
    best_score        real,
    best_candidate_id text,
    trajectories      integer NOT NULL DEFAULT 0,
    llm_calls         integer NOT NULL DEFAULT 0,
    evaluations       integer NOT NULL DEFAULT 0,
    error             text
);

CREATE INDEX optimization_runs_started_idx ON optimization_runs (started_at DESC, id DESC);
CREATE INDEX optimization_runs_agent_started_idx ON optimization_runs (agent_id, started_at DESC, id DESC);

CREATE TABLE prompt_candidates (
    id               text PRIMARY KEY,
    run_id           text NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
    parent_id        text,
    round            integer NOT NULL,
    prompt           text NOT NULL,
    critique         text,
    minibatch_score  real,
    validation_score real,
    evaluations      integer NOT NULL DEFAULT 0,
    status           text NOT NULL,
    created_at       text NOT NULL
);

CREATE INDEX prompt_candidates_run_idx ON prompt_candidates (run_id, round, created_at, id);

-- The prompt registry: versions 1, 2, 3, ... per agent; at most one promoted per agent.
CREATE TABLE prompts (
    agent_id      text NOT NULL,
    version       integer NOT NULL,
    text          text NOT NULL,
    source_run_id text,
    note          text,
    promoted      integer NOT NULL DEFAULT 0,
    created_at    text NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE UNIQUE INDEX prompts_one_promoted_idx ON prompts (agent_id) WHERE promoted;
