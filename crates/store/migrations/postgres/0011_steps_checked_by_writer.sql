-- Step rows are written only by the group commit, which locks each trajectory's row (FOR UPDATE)
-- and checks that it exists before inserting any of its steps; the foreign key's per-row trigger
-- repeated that check for every step (about 10 % of PostgreSQL's CPU under ingest load,
-- docs/benchmarks.md). Deleting a trajectory deletes its steps in the same transaction
-- (`Store::delete_trajectory`), which the cascade used to do.
ALTER TABLE trajectory_steps DROP CONSTRAINT IF EXISTS trajectory_steps_trajectory_id_fkey;
