-- Scores on trajectories (and on single steps). Same conventions as 0001: timestamps are
-- fixed-width RFC 3339 text, JSON is JSON text, trajectory ids are lowercase hyphenated UUID text.
-- Numeric scores and booleans (1/0) live in value_number, labels in value_label, so means and
-- range filters work on both.
CREATE TABLE scores (
    id            text PRIMARY KEY,
    trajectory_id text NOT NULL REFERENCES trajectories (id) ON DELETE CASCADE,
    name          text NOT NULL,
    data_type     text NOT NULL,
    value_number  real,
    value_label   text,
    comment       text,
    source        text NOT NULL,
    step_number   integer,
    metadata      text,
    created_at    text NOT NULL,
    updated_at    text NOT NULL
);

CREATE INDEX scores_trajectory_idx ON scores (trajectory_id, created_at, id);
CREATE INDEX scores_name_idx ON scores (name, trajectory_id);

-- The data type of each score name, per agent: fixed by the first score of that name (and
-- released when the last one is deleted), so every later score of the name must match it.
CREATE TABLE score_names (
    agent_id  text NOT NULL,
    name      text NOT NULL,
    data_type text NOT NULL,
    PRIMARY KEY (agent_id, name)
);
