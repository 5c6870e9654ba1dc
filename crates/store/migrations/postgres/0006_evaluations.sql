-- Evidence behind optimization results (issue 15): the run's test-set comparison, each
-- candidate's scores with n and interval, the evaluator a prompt version rests on, and every
-- (candidate, example) evaluation.
ALTER TABLE optimization_runs ADD COLUMN evidence jsonb;
ALTER TABLE prompt_candidates ADD COLUMN scores jsonb;
ALTER TABLE prompts ADD COLUMN evaluator text;

CREATE TABLE candidate_evaluations (
    run_id                   uuid NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
    candidate_id             uuid NOT NULL,
    trajectory_id            uuid NOT NULL,
    split                    text NOT NULL,
    reward                   double precision NOT NULL,
    feedback                 text,
    error                    text,
    evaluator                text NOT NULL,
    duration_ms              bigint NOT NULL DEFAULT 0,
    cost_usd                 double precision,
    evaluation_trajectory_id uuid,
    created_at               timestamptz NOT NULL,
    PRIMARY KEY (run_id, candidate_id, trajectory_id)
);
