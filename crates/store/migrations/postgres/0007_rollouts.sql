-- Canary rollouts (at most one per agent) and the history of prompt decisions.
CREATE TABLE prompt_rollouts (
    agent_id         text PRIMARY KEY,
    rollout_id       uuid NOT NULL,
    version          bigint NOT NULL,
    baseline_version bigint,
    percent          double precision NOT NULL,
    auto_rollback    boolean NOT NULL DEFAULT false,
    reward           text NOT NULL,
    started_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    FOREIGN KEY (agent_id, version) REFERENCES prompts (agent_id, version)
);

CREATE TABLE prompt_events (
    id         uuid PRIMARY KEY,
    agent_id   text NOT NULL,
    kind       text NOT NULL,
    version    bigint,
    rollout_id uuid,
    percent    double precision,
    actor      text NOT NULL,
    reason     text,
    evidence   jsonb,
    created_at timestamptz NOT NULL
);

CREATE INDEX prompt_events_agent_idx ON prompt_events (agent_id, created_at DESC, id DESC);
-- Comparisons aggregate one agent's runs per prompt version.
CREATE INDEX trajectories_agent_version_idx ON trajectories (agent_id, prompt_version, start_time);
