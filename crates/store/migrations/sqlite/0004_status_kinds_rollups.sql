-- Stored trajectory status (running|succeeded|failed|interrupted|abandoned), step kinds
-- (tool|message|event), and what makes a step batch O(1) in its trajectory's length:
-- the largest stored step number (steps above it are new without a lookup) and a per-trajectory,
-- per-tool rollup maintained in the batch's transaction (stats read it instead of every step).

ALTER TABLE trajectories ADD COLUMN status text NOT NULL DEFAULT 'running';
UPDATE trajectories SET status = CASE WHEN success THEN 'succeeded' ELSE 'failed' END
    WHERE success IS NOT NULL;
ALTER TABLE trajectories ADD COLUMN max_step_number integer;
UPDATE trajectories SET max_step_number =
    (SELECT MAX(step_number) FROM trajectory_steps s WHERE s.trajectory_id = trajectories.id);

ALTER TABLE trajectory_steps ADD COLUMN kind text NOT NULL DEFAULT 'tool';

-- The idle sweep: only running trajectories, oldest activity first.
CREATE INDEX trajectories_running_idle_idx ON trajectories (updated_at) WHERE status = 'running';

CREATE TABLE trajectory_tool_stats (
    trajectory_id  text NOT NULL REFERENCES trajectories (id) ON DELETE CASCADE,
    tool_name      text NOT NULL,
    calls          integer NOT NULL,
    errors         integer NOT NULL,
    duration_sum   integer NOT NULL,
    duration_count integer NOT NULL,
    PRIMARY KEY (trajectory_id, tool_name)
);

INSERT INTO trajectory_tool_stats
    SELECT trajectory_id, tool_name, COUNT(*), COUNT(error), COALESCE(SUM(duration_ms), 0),
           COUNT(duration_ms)
    FROM trajectory_steps GROUP BY trajectory_id, tool_name;
