/**
 * The collector's wire types, under the names the dashboard uses. Every shape comes from
 * `api.gen.ts`, which `scripts/gen-api-types` generates from the collector's OpenAPI document
 * (`lightning openapi`); `./scripts/test` fails when it is stale. Change the Rust types, not
 * these. The only additions here are narrowings of fields the document types as any JSON.
 */
import type * as Wire from './api.gen';

/** `interrupted`: the process ended before the agent did; `abandoned`: no activity for the collector's idle time. */
export type Status = Wire.Status;

/** What a step records: a tool call (default), assistant text, or a lifecycle event. */
export type StepKind = Wire.StepKind;

export type Usage = Wire.Usage;
export type Trajectory = Wire.Trajectory;
/** Widened where older collectors differ: they sent no `kind` (a tool call) and could send a
 * step without a timestamp; the dashboard still renders their steps. */
export type Step = Omit<Wire.Step, 'kind' | 'timestamp'> & { kind?: StepKind | null; timestamp: string | null };

export type ScoreValue = Wire.ScoreValue;
export type ScoreSource = Wire.ScoreSource;
export type Score = Wire.Score;
export type NewScore = Wire.NewScore;
export type LabelCount = Wire.LabelCount;
export type ScoreStats = Wire.ScoreStats;

/** `GET /api/trajectories/{id}`: a trajectory with one page of its steps and all its scores. */
export type TrajectoryDetail = Omit<Wire.TrajectoryDetail, 'steps'> & { steps: Step[] };
/** `GET /api/trajectories`: a page of trajectories and the scores of the listed ones. */
export type TrajectoryPage = Wire.TrajectoryListResponse;

export type ToolStat = Wire.ToolStats;
export type AgentStat = Wire.AgentStats;
export type TimelineBucket = Wire.TimelinePoint;
/** `GET /api/stats`. */
export type Stats = Wire.StatsResponse;
export type AgentSummary = Wire.AgentSummary;

export type RunStatus = Wire.RunStatus;
/** A mean reward with n and its interval (Wilson for success rates, bootstrap otherwise). */
export type IntervalScore = Wire.IntervalScore;
/** Best minus start on the same test examples. */
export type PairedDifference = Wire.PairedDifference;
/** How a finished optimization run ended. */
export type Verdict = Wire.RunVerdict;
export type RunEvidence = Wire.RunEvidence;
export type CandidateScores = Wire.CandidateScores;
export type CandidateEvaluation = Wire.CandidateEvaluation;
export type Run = Wire.OptimizationRun;
export type CandidateStatus = Wire.CandidateStatus;
export type Candidate = Wire.PromptCandidate;
export type RunDetail = Wire.RunWithCandidates;
export type Prompt = Wire.Prompt;

/** A point estimate with its interval (`stats::Estimate`). */
export type Estimate = Wire.Estimate;
export type Rollout = Wire.Rollout;
export type ToolErrors = Wire.ToolErrors;
export type ArmSummary = Wire.ArmSummary;
/** A rollout comparison's verdict. */
export type RolloutVerdict = Wire.Verdict;
export type Comparison = Wire.Comparison;
/** Reward over time per version, aggregated by the collector (`GET …/prompts/series`). */
export type RewardSeries = Wire.RewardSeries;
/** Who promotes and why (the optional promote body). */
export type DecisionNote = Wire.DecisionNote;
/** An active rollout with its live comparison (the collector answers both null when there is
 * none, which `Api.rollout` turns into `null`). */
export type RolloutStatus = { [K in keyof Wire.RolloutStatus]-?: NonNullable<Wire.RolloutStatus[K]> };

/** A prompt event; the collector stores `evidence` as JSON and writes the comparison that
 * justified the event there (the document can only say "any JSON"). */
export type PromptEvent = Omit<Wire.PromptEvent, 'evidence'> & { evidence?: Comparison | null };
