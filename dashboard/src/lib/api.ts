import type {
  AgentSummary,
  NewScore,
  Score,
  CandidateEvaluation,
  Comparison,
  DecisionNote,
  PromptEvent,
  RewardSeries,
  Rollout,
  RolloutStatus,
  Prompt,
  Run,
  RunDetail,
  Stats,
  Step,
  TrajectoryDetail,
  TrajectoryPage,
} from './types';
import type { RolloutStatus as WireRolloutStatus } from './api.gen';

export const KEY_STORAGE = 'lightning.apiKey';

/** An error answered by the collector (or a network failure, status 0). */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
  get unauthorized(): boolean {
    return this.status === 401;
  }
  get notFound(): boolean {
    return this.status === 404;
  }
  /** A valid key whose scope does not allow this (e.g. a read key promoting a prompt). */
  get forbidden(): boolean {
    return this.status === 403;
  }
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export function queryString(params: Query): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'DELETE';
  body?: unknown;
  signal?: AbortSignal;
}

/** Thin client over the collector's HTTP API (docs/api.md). */
export class Api {
  readonly key: string;
  readonly base: string;
  /** Called when the server rejects the key, so the app can sign out. */
  onUnauthorized: (() => void) | null = null;

  constructor(key: string, base = '') {
    this.key = key;
    this.base = base;
  }

  async request<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.key}`, Accept: 'application/json' };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let response: Response;
    try {
      response = await fetch(this.base + path, { method: options.method ?? 'GET', headers, body, signal: options.signal });
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') throw err;
      throw new ApiError(0, 'Cannot reach the collector. Is `lightning serve` running?');
    }
    const text = await response.text();
    let data: unknown = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const message =
        data && typeof data === 'object' && 'error' in data && typeof (data as { error: unknown }).error === 'string'
          ? (data as { error: string }).error
          : `${response.status} ${response.statusText}`.trim();
      const error = new ApiError(response.status, message);
      if (error.unauthorized) this.onUnauthorized?.();
      throw error;
    }
    return data as T;
  }

  listTrajectories(filters: Query, signal?: AbortSignal): Promise<TrajectoryPage> {
    return this.request(`/api/trajectories${queryString(filters)}`, { signal });
  }
  /** The trajectory with all its steps, following the server's pages of steps. */
  async trajectory(id: string, signal?: AbortSignal): Promise<TrajectoryDetail> {
    const path = `/api/trajectories/${encodeURIComponent(id)}`;
    type Page = TrajectoryDetail & { nextStepsAfter?: number | null };
    const first = await this.request<Page>(path, { signal });
    const steps = [...first.steps];
    let next = first.nextStepsAfter ?? null;
    while (next !== null) {
      const page = await this.request<Page>(`${path}${queryString({ stepsAfter: next, stepsLimit: 2000 })}`, { signal });
      steps.push(...page.steps);
      next = page.steps.length ? (page.nextStepsAfter ?? null) : null;
    }
    const { nextStepsAfter: _ignored, ...detail } = first;
    return { ...detail, steps };
  }
  stepsAfter(id: string, after: number, limit = 1000, signal?: AbortSignal): Promise<{ steps: Step[] }> {
    return this.request(`/api/trajectories/${encodeURIComponent(id)}/steps${queryString({ after, limit })}`, { signal });
  }
  scores(id: string, signal?: AbortSignal): Promise<{ scores: Score[] }> {
    return this.request(`/api/trajectories/${encodeURIComponent(id)}/scores`, { signal });
  }
  addScore(id: string, score: NewScore): Promise<{ id: string }> {
    return this.request(`/api/trajectories/${encodeURIComponent(id)}/scores`, { method: 'POST', body: score });
  }
  deleteScore(scoreId: string): Promise<{ success: boolean }> {
    return this.request(`/api/scores/${encodeURIComponent(scoreId)}`, { method: 'DELETE' });
  }
  stats(filters: Query, signal?: AbortSignal): Promise<Stats> {
    return this.request(`/api/stats${queryString(filters)}`, { signal });
  }
  agents(signal?: AbortSignal): Promise<{ agents: AgentSummary[] }> {
    return this.request('/api/agents', { signal });
  }
  runs(filters: Query, signal?: AbortSignal): Promise<{ runs: Run[] }> {
    return this.request(`/api/optimization-runs${queryString(filters)}`, { signal });
  }
  run(id: string, signal?: AbortSignal): Promise<RunDetail> {
    return this.request(`/api/optimization-runs/${encodeURIComponent(id)}`, { signal });
  }
  runEvaluations(id: string, signal?: AbortSignal): Promise<{ evaluations: CandidateEvaluation[] }> {
    return this.request(`/api/optimization-runs/${encodeURIComponent(id)}/evaluations`, { signal });
  }
  prompts(agentId: string, signal?: AbortSignal): Promise<{ prompts: Prompt[] }> {
    return this.request(`/api/agents/${encodeURIComponent(agentId)}/prompts`, { signal });
  }
  /** Promotes `version`; `note` (who, why) is recorded in the decision's event. */
  promote(agentId: string, version: number, note: DecisionNote = {}): Promise<Prompt> {
    return this.request(`/api/agents/${encodeURIComponent(agentId)}/prompts/${version}/promote`, { method: 'POST', body: note });
  }
  /** Compares two versions (`baseline,candidate`, each a number or `none`). */
  compare(agentId: string, params: { versions: string; since?: string }, signal?: AbortSignal): Promise<Comparison> {
    return this.request(`/api/agents/${encodeURIComponent(agentId)}/prompts/compare${queryString(params)}`, { signal });
  }
  /** Reward over time per version in `buckets` time buckets (default: the active rollout's arms since it began). */
  rewardSeries(agentId: string, params: { buckets?: number; versions?: string; since?: string } = {}, signal?: AbortSignal): Promise<RewardSeries> {
    return this.request(`/api/agents/${encodeURIComponent(agentId)}/prompts/series${queryString(params)}`, { signal });
  }
  /** The active rollout with its live comparison; null when there is none. */
  async rollout(agentId: string, signal?: AbortSignal): Promise<RolloutStatus | null> {
    const r = await this.request<WireRolloutStatus>(
      `/api/agents/${encodeURIComponent(agentId)}/prompts/rollout`,
      { signal },
    );
    return r.rollout && r.comparison ? { rollout: r.rollout, comparison: r.comparison } : null;
  }
  startRollout(agentId: string, version: number, body: { percent: number; autoRollback: boolean; reason?: string; actor?: string }): Promise<Rollout> {
    return this.request(`/api/agents/${encodeURIComponent(agentId)}/prompts/${version}/rollout`, { method: 'POST', body });
  }
  endRollout(agentId: string, version: number, rollback: boolean, actor?: string): Promise<{ event: PromptEvent }> {
    return this.request(`/api/agents/${encodeURIComponent(agentId)}/prompts/${version}/rollout${queryString({ rollback, actor })}`, { method: 'DELETE' });
  }
  promptEvents(agentId: string, signal?: AbortSignal): Promise<{ events: PromptEvent[] }> {
    return this.request(`/api/agents/${encodeURIComponent(agentId)}/prompts/events`, { signal });
  }
}

/** Check a key against the API; resolves when accepted, throws ApiError otherwise. */
export async function verifyKey(key: string, base = ''): Promise<void> {
  const api = new Api(key, base);
  await api.request('/api/trajectories?limit=1');
}
