-- Stored trajectory status (running|succeeded|failed|interrupted|abandoned), step kinds
-- (tool|message|event), and what makes a step batch O(1) in its trajectory's length:
-- the largest stored step number (steps above it are new without a lookup) and a per-trajectory,
-- per-tool rollup maintained in the batch's transaction (stats read it instead of every step).

ALTER TABLE trajectories ADD COLUMN status text NOT NULL DEFAULT 'running';
UPDATE trajectories SET status = CASE WHEN success THEN 'succeeded' ELSE 'failed' END
    WHERE success IS NOT NULL;
ALTER TABLE trajectories ADD COLUMN max_step_number bigint;
UPDATE trajectories t SET max_step_number = m.max_step
    FROM (SELECT trajectory_id, MAX(step_number) AS max_step FROM trajectory_steps GROUP BY 1) m
    WHERE m.trajectory_id = t.id;

ALTER TABLE trajectory_steps ADD COLUMN kind text NOT NULL DEFAULT 'tool';

-- The idle sweep: only running trajectories, oldest activity first.
CREATE INDEX trajectories_running_idle_idx ON trajectories (updated_at) WHERE status = 'running';

CREATE TABLE trajectory_tool_stats (
    trajectory_id  uuid NOT NULL REFERENCES trajectories (id) ON DELETE CASCADE,
    tool_name      text NOT NULL,
    calls          bigint NOT NULL,
    errors         bigint NOT NULL,
    duration_sum   bigint NOT NULL,
    duration_count bigint NOT NULL,
    PRIMARY KEY (trajectory_id, tool_name)
);

INSERT INTO trajectory_tool_stats
    SELECT trajectory_id, tool_name, COUNT(*), COUNT(error), COALESCE(SUM(duration_ms), 0),
           COUNT(duration_ms)
    FROM trajectory_steps GROUP BY trajectory_id, tool_name;
