CREATE TABLE trajectories (
    id                          uuid PRIMARY KEY,
    agent_id                    text NOT NULL,
    task_type                   text,
    session_id                  text,
    prompt                      text,
    system_prompt               text,
    prompt_version              text,
    model                       text,
    metadata                    jsonb,
    start_time                  timestamptz NOT NULL,
    end_time                    timestamptz,
    success                     boolean,
    result                      jsonb,
    error                       text,
    total_steps                 bigint,
    duration_ms                 bigint,
    cost_usd                    double precision,
    input_tokens                bigint,
    output_tokens               bigint,
    cache_read_input_tokens     bigint,
    cache_creation_input_tokens bigint,
    num_turns                   bigint,
    step_count                  bigint NOT NULL DEFAULT 0,
    error_count                 bigint NOT NULL DEFAULT 0,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL
);

CREATE INDEX trajectories_start_idx ON trajectories (start_time DESC, id DESC);
CREATE INDEX trajectories_agent_start_idx ON trajectories (agent_id, start_time DESC, id DESC);

CREATE TABLE trajectory_steps (
    trajectory_id uuid NOT NULL REFERENCES trajectories (id) ON DELETE CASCADE,
    step_number   bigint NOT NULL,
    "timestamp"   timestamptz NOT NULL,
    tool_name     text NOT NULL,
    tool_input    jsonb,
    tool_output   jsonb,
    error         text,
    duration_ms   bigint,
    tool_use_id   text,
    metadata      jsonb,
    PRIMARY KEY (trajectory_id, step_number)
);

CREATE INDEX trajectory_steps_tool_idx ON trajectory_steps (tool_name);
