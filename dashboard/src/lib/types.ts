export type Status = 'running' | 'succeeded' | 'failed';

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
  timestamp: string | null;
  toolName: string;
  toolInput: unknown;
  toolOutput: unknown;
  error: string | null;
  durationMs: number | null;
  toolUseId: string | null;
  metadata: Record<string, unknown> | null;
}

export interface TrajectoryDetail extends Trajectory {
  steps: Step[];
}

export interface TrajectoryPage {
  trajectories: Trajectory[];
  nextCursor: string | null;
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
export interface Score {
  mean: number;
  n: number;
  low: number;
  high: number;
  confidence: number;
  method: 'wilson' | 'bootstrap' | 'newcombe';
}

/** Best minus start on the same test examples. */
export interface PairedDifference extends Score {
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
  baselineValidation: Score | null;
  bestValidation: Score | null;
  baselineTest: Score;
  bestTest: Score;
  difference: PairedDifference;
  significant: boolean;
  verdict: Verdict;
}

export interface CandidateScores {
  minibatch: Score | null;
  validation: Score | null;
  test: Score | null;
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
