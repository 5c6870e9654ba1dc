-- What every step batch pays for beyond its own rows (issue 10):
-- * trajectory_steps_tool_idx was read by no query (per-tool figures come from
--   trajectory_tool_stats) but cost a btree insertion per stored step;
-- * trajectories_running_idle_idx indexed updated_at, which every batch changes, so no counter
--   update of a trajectory could be a HOT update: each one wrote a new entry into all five of the
--   table's indexes and left dead versions behind on the hottest rows. The idle sweep now finds
--   running trajectories by an index on a column that never changes and filters on updated_at
--   (running trajectories are few: the live agents and what a crash left open).
-- * free space on each page keeps those updates on the same page (HOT needs room there).
DROP INDEX IF EXISTS trajectory_steps_tool_idx;
DROP INDEX IF EXISTS trajectories_running_idle_idx;
CREATE INDEX trajectories_running_idx ON trajectories (start_time) WHERE status = 'running';
ALTER TABLE trajectories SET (fillfactor = 80);
