-- Evidence behind optimization results (issue 15): the run's test-set comparison, each
-- candidate's scores with n and interval, the evaluator a prompt version rests on, and every
-- (candidate, example) evaluation. Same conventions as 0001/0002.
ALTER TABLE optimization_runs ADD COLUMN evidence text;
ALTER TABLE prompt_candidates ADD COLUMN scores text;
ALTER TABLE prompts ADD COLUMN evaluator text;

CREATE TABLE candidate_evaluations (
    run_id                   text NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
    candidate_id             text NOT NULL,
    trajectory_id            text NOT NULL,
    split                    text NOT NULL,
    reward                   real NOT NULL,
    feedback                 text,
    error                    text,
    evaluator                text NOT NULL,
    duration_ms              integer NOT NULL DEFAULT 0,
    cost_usd                 real,
    evaluation_trajectory_id text,
    created_at               text NOT NULL,
    PRIMARY KEY (run_id, candidate_id, trajectory_id)
);
