-- Timestamps are fixed-width RFC 3339 text (lightning_core::time::format), which sorts in time order.
-- JSON columns hold JSON text. Ids are lowercase hyphenated UUID text.
CREATE TABLE trajectories (
    id                          text PRIMARY KEY,
    agent_id                    text NOT NULL,
    task_type                   text,
    session_id                  text,
    prompt                      text,
    system_prompt               text,
    prompt_version              text,
    model                       text,
    metadata                    text,
    start_time                  text NOT NULL,
    end_time                    text,
    success                     integer,
    result                      text,
    error                       text,
    total_steps                 integer,
    duration_ms                 integer,
    cost_usd                    real,
    input_tokens                integer,
    output_tokens               integer,
    cache_read_input_tokens     integer,
    cache_creation_input_tokens integer,
    num_turns                   integer,
    step_count                  integer NOT NULL DEFAULT 0,
    error_count                 integer NOT NULL DEFAULT 0,
    created_at                  text NOT NULL,
    updated_at                  text NOT NULL
);

CREATE INDEX trajectories_start_idx ON trajectories (start_time DESC, id DESC);
CREATE INDEX trajectories_agent_start_idx ON trajectories (agent_id, start_time DESC, id DESC);

CREATE TABLE trajectory_steps (
    trajectory_id text NOT NULL REFERENCES trajectories (id) ON DELETE CASCADE,
    step_number   integer NOT NULL,
    "timestamp"   text NOT NULL,
    tool_name     text NOT NULL,
    tool_input    text,
    tool_output   text,
    error         text,
    duration_ms   integer,
    tool_use_id   text,
    metadata      text,
    PRIMARY KEY (trajectory_id, step_number)
);

CREATE INDEX trajectory_steps_tool_idx ON trajectory_steps (tool_name);
