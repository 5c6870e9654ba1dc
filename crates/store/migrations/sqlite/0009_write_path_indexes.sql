-- What every step batch pays for beyond its own rows (issue 10; see the PostgreSQL migration):
-- trajectory_steps_tool_idx was read by no query but cost an index insertion per stored step;
-- trajectories_running_idle_idx indexed updated_at, which every batch changes, so each counter
-- update also rewrote an index entry. The idle sweep finds running trajectories by an index on a
-- column that never changes and filters on updated_at.
DROP INDEX IF EXISTS trajectory_steps_tool_idx;
DROP INDEX IF EXISTS trajectories_running_idle_idx;
CREATE INDEX trajectories_running_idx ON trajectories (start_time) WHERE status = 'running';
