-- Canary rollouts (at most one per agent) and the history of prompt decisions.
-- Same conventions as 0001: RFC 3339 text timestamps, JSON text, UUID text, 0/1 booleans.
CREATE TABLE prompt_rollouts (
    agent_id         text PRIMARY KEY,
    rollout_id       text NOT NULL,
    version          integer NOT NULL,
    baseline_version integer,
    percent          real NOT NULL,
    auto_rollback    integer NOT NULL DEFAULT 0,
    reward           text NOT NULL,
    started_at       text NOT NULL,
    updated_at       text NOT NULL,
    FOREIGN KEY (agent_id, version) REFERENCES prompts (agent_id, version)
);

CREATE TABLE prompt_events (
    id         text PRIMARY KEY,
    agent_id   text NOT NULL,
    kind       text NOT NULL,
    version    integer,
    rollout_id text,
    percent    real,
    actor      text NOT NULL,
    reason     text,
    evidence   text,
    created_at text NOT NULL
);

CREATE INDEX prompt_events_agent_idx ON prompt_events (agent_id, created_at DESC, id DESC);
-- Comparisons aggregate one agent's runs per prompt version.
CREATE INDEX trajectories_agent_version_idx ON trajectories (agent_id, prompt_version, start_time);
