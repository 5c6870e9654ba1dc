/** `interrupted`: the process ended before the agent did; `abandoned`: no activity for the collector's idle time. */
export type Status = 'running' | 'succeeded' | 'failed' | 'interrupted' | 'abandoned';

/** What a step records: a tool call (default), assistant text, or a lifecycle event. */
export type StepKind = 'tool' | 'message' | 'event';

export interface Usage {
  inputTokens: number | null;
  outputTokens: number | null;
  cacheReadInputTokens: number | null;
  cacheCreationInputTokens: number | null;
}

export interface Trajectory {
  id: string;
  agentId: string;
  taskType: string | null;
  sessionId: string | null;
  prompt: string | null;
  systemPrompt: string | null;
  promptVersion: string | number | null;
  model: string | null;
  metadata: Record<string, unknown> | null;
  startTime: string;
  endTime: string | null;
  status: Status;
  success: boolean | null;
  result: unknown;
  error: string | null;
  totalSteps: number | null;
  durationMs: number | null;
  costUsd: number | null;
  usage: Usage | null;
  numTurns: number | null;
  stepCount: number;
  errorCount: number;
  createdAt: string;
  updatedAt: string;
}

export interface Step {
  stepNumber: number;
  /** absent or null on collectors that predate step kinds: a tool call */
  kind?: StepKind | null;
  timestamp: string | null;
  toolName: string;
  toolInput: unknown;
  toolOutput: unknown;
  error: string | null;
  durationMs: number | null;
  toolUseId: string | null;
  metadata: Record<string, unknown> | null;
}

export type ScoreValue = number | boolean | string;
export type ScoreSource = 'human' | 'llm' | 'code' | 'sdk';

export interface Score {
  id: string;
  trajectoryId: string;
  name: string;
  value: ScoreValue;
  dataType: 'numeric' | 'boolean' | 'categorical';
  comment: string | null;
  source: ScoreSource;
  stepNumber: number | null;
  metadata: Record<string, unknown> | null;
  createdAt: string;
  updatedAt: string;
}

export interface NewScore {
  name: string;
  value: ScoreValue;
  comment?: string;
  source?: ScoreSource;
  id?: string;
  stepNumber?: number;
}

export interface LabelCount {
  label: string;
  count: number;
}

export interface ScoreStats {
  name: string;
  dataType: 'numeric' | 'boolean' | 'categorical';
  count: number;
  trajectories: number;
  mean: number | null;
  labels: LabelCount[];
  byPromptVersion: { promptVersion: string | null; count: number; mean: number | null; labels: LabelCount[] }[];
  timeline: { bucket: string; count: number; mean: number | null }[];
}

export interface TrajectoryDetail extends Trajectory {
  steps: Step[];
  scores?: Score[];
}

export interface TrajectoryPage {
  trajectories: Trajectory[];
  nextCursor: string | null;
  /** Scores of the listed trajectories (newer collectors). */
  scores?: Score[];
}

export interface ToolStat {
  toolName: string;
  calls: number;
  errors: number;
  errorRate: number | null;
  meanDurationMs: number | null;
}

export interface AgentStat {
  agentId: string;
  trajectories: number;
  succeeded: number;
  failed: number;
  successRate: number | null;
}

export interface TimelineBucket {
  bucket: string;
  trajectories: number;
  succeeded: number;
  failed: number;
}

export interface Stats {
  trajectories: number;
  running: number;
  succeeded: number;
  failed: number;
  successRate: number | null;
  meanSteps: number | null;
  meanDurationMs: number | null;
  meanCostUsd: number | null;
  totalCostUsd: number | null;
  tools: ToolStat[];
  agents: AgentStat[];
  timeline: TimelineBucket[];
  scores?: ScoreStats[];
}

export interface AgentSummary {
  agentId: string;
  trajectories: number;
  succeeded: number;
  failed: number;
  lastSeen: string | null;
}

export type RunStatus = 'running' | 'completed' | 'failed';

/** A mean reward with n and its interval (Wilson for success rates, bootstrap otherwise). */
export interface IntervalScore {
  mean: number;
  n: number;
  low: number;
  high: number;
  confidence: number;
  method: 'wilson' | 'bootstrap' | 'newcombe';
}

/** Best minus start on the same test examples. */
export interface PairedDifference extends IntervalScore {
  wins: number;
  losses: number;
  ties: number;
}

export type Verdict = 'registered' | 'significantNotRegistered' | 'judgeEstimateNotRegistered' | 'noSignificantImprovement';

export interface RunEvidence {
  evaluator: string;
  /** Judge scores: an LLM's estimate, not observed runs. */
  estimate: boolean;
  split: { train: number; validation: number; test: number };
  confidence: number;
  minImprovement: number;
  baselineValidation: IntervalScore | null;
  bestValidation: IntervalScore | null;
  baselineTest: IntervalScore;
  bestTest: IntervalScore;
  difference: PairedDifference;
  significant: boolean;
  verdict: Verdict;
}

export interface CandidateScores {
  minibatch: IntervalScore | null;
  validation: IntervalScore | null;
  test: IntervalScore | null;
}

export interface CandidateEvaluation {
  runId: string;
  candidateId: string;
  trajectoryId: string;
  split: 'train' | 'validation' | 'test';
  reward: number;
  feedback: string | null;
  error: string | null;
  evaluator: string;
  durationMs: number;
  costUsd: number | null;
  evaluationTrajectoryId: string | null;
  createdAt: string;
}

export interface Run {
  id: string;
  agentId: string;
  status: RunStatus;
  startedAt: string;
  finishedAt: string | null;
  config: Record<string, unknown> | null;
  baselineScore: number | null;
  bestScore: number | null;
  bestCandidateId: string | null;
  trajectories: number | null;
  llmCalls: number | null;
  evaluations: number | null;
  error: string | null;
  evidence?: RunEvidence | null;
}

export type CandidateStatus = 'seed' | 'pruned' | 'evaluated' | 'kept' | 'best';

export interface Candidate {
  id: string;
  runId: string;
  parentId: string | null;
  round: number;
  prompt: string;
  critique: string | null;
  minibatchScore: number | null;
  validationScore: number | null;
  evaluations: number | null;
  status: CandidateStatus;
  createdAt: string;
  scores?: CandidateScores;
}

export interface RunDetail extends Run {
  candidates: Candidate[];
}

export interface Prompt {
  agentId: string;
  version: number;
  text: string;
  sourceRunId: string | null;
  note: string | null;
  promoted: boolean;
  createdAt: string;
  evaluator?: string | null;
}

/** A point estimate with its interval (`stats::Estimate`). */
export interface Estimate {
  value: number;
  low: number;
  high: number;
}

export interface Rollout {
  agentId: string;
  rolloutId: string;
  version: number;
  baselineVersion: number | null;
  percent: number;
  autoRollback: boolean;
  reward: string;
  startedAt: string;
  updatedAt: string;
}

export interface ToolErrors {
  toolName: string;
  calls: number;
  errors: number;
  errorRate: number;
}

export interface ArmSummary {
  version: string;
  runs: number;
  rewarded: number;
  reward: Estimate | null;
  meanCostUsd: number | null;
  meanDurationMs: number | null;
  meanSteps: number | null;
  tools: ToolErrors[];
}

export type RolloutVerdict = 'insufficient_data' | 'no_difference_yet' | 'better' | 'worse';

export interface Comparison {
  agentId: string;
  reward: string;
  since: string | null;
  arms: ArmSummary[];
  difference: { estimate: number; low: number; high: number; pValue: number } | null;
  verdict: RolloutVerdict;
  method: { alpha: number; tau: number; minRuns: number };
}

export interface RolloutStatus {
  rollout: Rollout;
  comparison: Comparison;
}

export interface PromptEvent {
  id: string;
  agentId: string;
  kind: 'rollout_started' | 'rollout_updated' | 'rollout_ended' | 'rolled_back' | 'promoted';
  version: number | null;
  rolloutId: string | null;
  percent: number | null;
  actor: string;
  reason: string | null;
  evidence: Comparison | null;
  createdAt: string;
}
