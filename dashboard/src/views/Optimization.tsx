import { useMemo, useState } from 'react';
import { useApi } from '../auth';
import { AgentSelect } from '../components/AgentSelect';
import { Badge, CodeBlock, EmptyState, ErrorBox, Loading, PageHeader } from '../components/common';
import { DiffView } from '../components/DiffView';
import { PromoteDialog, RolloutPanel } from '../components/RolloutPanel';
import { ApiError } from '../lib/api';
import { DASH, formatDateTime, formatDuration, formatInterval, formatNumber, formatScore, shortId } from '../lib/format';
import { useAsync } from '../lib/hooks';
import { Link, navigate, setSearch, useLocation } from '../lib/router';
import type { Candidate, CandidateEvaluation, CandidateStatus, Prompt, Run, RunDetail as RunDetailData, RunEvidence, IntervalScore, Verdict } from '../lib/types';

function NotAvailable({ what }: { what: string }) {
  return (
    <EmptyState title={`No ${what} yet`}>
      This collector does not serve {what} yet (the API answered 404). They appear here once the optimizer has run.
    </EmptyState>
  );
}

const RUN_TONE = { running: 'info', completed: 'ok', failed: 'bad', cancelled: 'neutral' } as const;

/** A run's status; a `running` run whose optimizer stopped sending heartbeats shows `stale`. */
export function RunStatus({ run }: { run: Run }) {
  if (run.stale) {
    const since = run.heartbeatAt ?? run.startedAt;
    return (
      <Badge tone="warn" title={`Stored as running, but its optimizer has not been heard from since ${formatDateTime(since)}: the process died without recording an end`}>
        stale
      </Badge>
    );
  }
  return <Badge tone={RUN_TONE[run.status] ?? 'neutral'}>{run.status}</Badge>;
}

/** Spend so far with the tokens behind it, or a dash when the run recorded none. */
export function runSpend(run: Run): string {
  if (run.costUsd == null && run.inputTokens == null) return DASH;
  const cost = run.costUsd == null ? DASH : `$${run.costUsd.toFixed(run.costUsd < 1 ? 4 : 2)}`;
  const tokens = run.inputTokens == null ? '' : ` · ${formatNumber(run.inputTokens)} in / ${formatNumber(run.outputTokens ?? 0)} out tokens`;
  return cost + tokens;
}
const CANDIDATE_TONE: Record<CandidateStatus, 'neutral' | 'bad' | 'info' | 'ok' | 'accent'> = {
  seed: 'neutral',
  pruned: 'bad',
  evaluated: 'info',
  kept: 'ok',
  best: 'accent',
};

const VERDICT: Record<Verdict, { label: string; tone: 'ok' | 'neutral' | 'info' | 'bad' }> = {
  registered: { label: 'significant, registered', tone: 'ok' },
  significantNotRegistered: { label: 'significant, not registered', tone: 'info' },
  judgeEstimateNotRegistered: { label: 'judge estimate, not registered', tone: 'info' },
  noSignificantImprovement: { label: 'no significant improvement', tone: 'neutral' },
};

/** A confidence level as a percentage: `95%`, `99%`, `97.5%`. */
export function percent(confidence: number): string {
  return `${Math.round(confidence * 1000) / 10}%`;
}

/** The `[95% CI] n` that heads interval columns, at `confidence` (a bare `[CI] n` when unknown). */
function ciHeader(confidence: number | null | undefined): string {
  return confidence ? `[${percent(confidence)} CI] n` : '[CI] n';
}

/** A run's test score, with interval and n when the run recorded its evidence (and its level when `withLevel`). */
function runScore(run: Run, which: 'baselineTest' | 'bestTest', withLevel = false): string {
  const s: IntervalScore | undefined = run.evidence?.[which];
  if (!s) return formatScore(which === 'bestTest' ? run.bestScore : run.baselineScore);
  return withLevel ? `${formatInterval(s)} (${percent(s.confidence)})` : formatInterval(s);
}

function VerdictBadge({ evidence }: { evidence: RunEvidence | null | undefined }) {
  if (!evidence) return <>{DASH}</>;
  const v = VERDICT[evidence.verdict] ?? { label: evidence.verdict, tone: 'neutral' as const };
  return (
    <>
      <Badge tone={v.tone}>{v.label}</Badge>
      {evidence.estimate && <span className="muted small"> (judge estimate)</span>}
    </>
  );
}

function runDuration(run: Run): string {
  if (!run.finishedAt) return DASH;
  return formatDuration(new Date(run.finishedAt).getTime() - new Date(run.startedAt).getTime());
}

export function Optimization() {
  const api = useApi();
  const { search } = useLocation();
  const agentId = search.get('agentId') ?? '';
  const runs = useAsync((signal) => api.runs({ agentId, limit: 100 }, signal), `runs:${agentId}`);
  const runsMissing = runs.error instanceof ApiError && runs.error.notFound;
  // The columns name the runs' confidence level when they share one; otherwise each cell names its own.
  const levels = new Set((runs.data?.runs ?? []).flatMap((r) => (r.evidence ? [r.evidence.confidence] : [])));
  const sharedLevel = levels.size <= 1 ? [...levels][0] : undefined;
  const mixedLevels = levels.size > 1;

  return (
    <div>
      <PageHeader title="Optimization">
        <button type="button" onClick={runs.reload}>
          Refresh
        </button>
      </PageHeader>
      <form className="filters card" aria-label="Optimization filters" onSubmit={(e) => e.preventDefault()}>
        <AgentSelect value={agentId} onChange={(v) => setSearch({ agentId: v })} />
        {agentId && (
          <div className="field field-action">
            <Link className="button" href={`/optimization/prompts/${encodeURIComponent(agentId)}`}>
              Prompt versions of {agentId}
            </Link>
          </div>
        )}
      </form>
      <section className="card" aria-labelledby="runs-h">
        <h2 id="runs-h">Runs</h2>
        {runsMissing ? (
          <NotAvailable what="optimization runs" />
        ) : runs.error ? (
          <ErrorBox error={runs.error} onRetry={runs.reload} />
        ) : runs.loading && !runs.data ? (
          <Loading />
        ) : !runs.data?.runs.length ? (
          <EmptyState title="No optimization runs yet">Start one with the optimizer; its runs are listed here.</EmptyState>
        ) : (
          <div className="table-scroll">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Run</th>
                <th scope="col">Agent</th>
                <th scope="col">Status</th>
                <th scope="col">Started</th>
                <th scope="col" className="num">Duration</th>
                <th scope="col" className="num">Start on test {ciHeader(sharedLevel)}</th>
                <th scope="col" className="num">Best on test {ciHeader(sharedLevel)}</th>
                <th scope="col">Result</th>
                <th scope="col" className="num">Evaluations</th>
                <th scope="col">Prompts</th>
              </tr>
            </thead>
            <tbody>
              {runs.data.runs.map((run) => (
                <tr key={run.id} className="clickable" onClick={() => navigate(`/optimization/runs/${encodeURIComponent(run.id)}`)}>
                  <td>
                    <Link href={`/optimization/runs/${encodeURIComponent(run.id)}`} onClick={(e) => e.stopPropagation()} aria-label={`Open run ${run.id}`}>
                      <span className="mono">{shortId(run.id)}</span>
                    </Link>
                  </td>
                  <td>{run.agentId}</td>
                  <td>
                    <RunStatus run={run} />
                  </td>
                  <td>{formatDateTime(run.startedAt)}</td>
                  <td className="num">{runDuration(run)}</td>
                  <td className="num">{runScore(run, 'baselineTest', mixedLevels)}</td>
                  <td className="num">{runScore(run, 'bestTest', mixedLevels)}</td>
                  <td>
                    <VerdictBadge evidence={run.evidence} />
                  </td>
                  <td className="num">{formatNumber(run.evaluations)}</td>
                  <td>
                    <Link href={`/optimization/prompts/${encodeURIComponent(run.agentId)}`} onClick={(e) => e.stopPropagation()}>
                      Versions
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          </div>
        )}
      </section>
    </div>
  );
}

interface TreeNode {
  candidate: Candidate;
  children: TreeNode[];
}

export function buildLineage(candidates: Candidate[]): TreeNode[] {
  const nodes = new Map<string, TreeNode>();
  for (const c of candidates) nodes.set(c.id, { candidate: c, children: [] });
  const roots: TreeNode[] = [];
  for (const c of candidates) {
    const node = nodes.get(c.id) as TreeNode;
    const parent = c.parentId ? nodes.get(c.parentId) : undefined;
    if (parent && parent !== node) parent.children.push(node);
    else roots.push(node);
  }
  const order = (a: TreeNode, b: TreeNode) => a.candidate.round - b.candidate.round || a.candidate.createdAt.localeCompare(b.candidate.createdAt);
  const sortDeep = (list: TreeNode[]) => {
    list.sort(order);
    for (const n of list) sortDeep(n.children);
  };
  sortDeep(roots);
  return roots;
}

function score(c: Candidate): number | null {
  return c.validationScore ?? c.minibatchScore ?? null;
}

/** A candidate's validation score with interval and n, else its minibatch score (so marked). */
function candidateScore(c: Candidate): string {
  const s = c.scores?.validation ?? null;
  if (s) return formatInterval(s);
  const m = c.scores?.minibatch ?? null;
  return m ? `${formatInterval(m)} (minibatch)` : formatScore(score(c));
}

/** The candidate of `list` with the highest score (validation, else minibatch), if any has one. */
function topCandidate(list: Candidate[]): Candidate | undefined {
  let top: Candidate | undefined;
  for (const c of list) {
    const v = score(c);
    if (v != null && (top === undefined || v > (score(top) ?? -Infinity))) top = c;
  }
  return top;
}

const SPLITS = ['train', 'validation', 'test'] as const;

/** Candidate × example grid of every evaluation: the per-instance view. */
export function EvidenceGrid({ candidates, evaluations }: { candidates: Candidate[]; evaluations: CandidateEvaluation[] }) {
  const { columns, rows, cells } = useMemo(() => {
    const bySplit = new Map<string, string[]>();
    const seen = new Set<string>();
    const cells = new Map<string, CandidateEvaluation>();
    const rowIds = new Set<string>();
    for (const e of evaluations) {
      cells.set(`${e.candidateId}|${e.trajectoryId}`, e);
      rowIds.add(e.candidateId);
      if (!seen.has(e.trajectoryId)) {
        seen.add(e.trajectoryId);
        bySplit.set(e.split, [...(bySplit.get(e.split) ?? []), e.trajectoryId]);
      }
    }
    const columns = SPLITS.flatMap((split) => (bySplit.get(split) ?? []).sort().map((id) => ({ split, id })));
    const rows = candidates.filter((c) => rowIds.has(c.id));
    return { columns, rows, cells };
  }, [candidates, evaluations]);
  if (!evaluations.length) return <EmptyState title="No evaluations stored for this run" />;
  return (
    <div className="table-scroll">
      <table className="table evidence-grid" aria-label="Evaluations: candidates by example">
        <thead>
          <tr>
            <th scope="col">Candidate</th>
            {SPLITS.map((split) => {
              const span = columns.filter((c) => c.split === split).length;
              return span ? (
                <th key={split} scope="colgroup" colSpan={span}>
                  {split} ({span})
                </th>
              ) : null;
            })}
          </tr>
        </thead>
        <tbody>
          {rows.map((c) => (
            <tr key={c.id}>
              <th scope="row">
                <span className="mono">{shortId(c.id)}</span> <Badge tone={CANDIDATE_TONE[c.status] ?? 'neutral'}>{c.status}</Badge>
              </th>
              {columns.map(({ id }) => {
                const e = cells.get(`${c.id}|${id}`);
                if (!e) return <td key={id} className="cell-empty" aria-label="not evaluated" />;
                const tone = e.error ? 'cell-error' : e.reward >= 1 ? 'cell-pass' : e.reward <= 0 ? 'cell-fail' : 'cell-partial';
                const title = [`trajectory ${id}`, `reward ${e.reward}`, e.feedback, e.error, `${e.durationMs} ms`, e.evaluationTrajectoryId ? `run ${e.evaluationTrajectoryId}` : null]
                  .filter(Boolean)
                  .join(' · ');
                return (
                  <td key={id} className={`cell ${tone}`} title={title} data-reward={e.reward}>
                    {e.reward.toFixed(e.reward === 0 || e.reward === 1 ? 0 : 1)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface ScoreContext {
  /** The run's confidence level (null for runs stored without evidence). */
  confidence: number | null;
  /** The scores are an LLM judge's estimates (`--evaluator judge`). */
  estimate: boolean;
}

function LineageTree({ nodes, selected, onSelect, scoring, level = 1 }: { nodes: TreeNode[]; selected: string | null; onSelect: (id: string) => void; scoring: ScoreContext; level?: number }) {
  const what = scoring.estimate ? 'judge-estimated validation score' : 'validation score';
  const interval = scoring.confidence ? `${percent(scoring.confidence)} interval` : 'interval';
  return (
    <ul className={level === 1 ? 'lineage' : 'lineage-children'} role={level === 1 ? 'tree' : 'group'} aria-label={level === 1 ? 'Candidate lineage' : undefined}>
      {nodes.map(({ candidate: c, children }) => (
        <li key={c.id} role="treeitem" aria-level={level} aria-selected={c.id === selected} aria-expanded={children.length ? true : undefined}>
          <button type="button" className={c.id === selected ? 'node selected' : 'node'} onClick={() => onSelect(c.id)}>
            <span className="node-round">R{c.round}</span>
            <span className="mono">{shortId(c.id)}</span>
            <Badge tone={CANDIDATE_TONE[c.status] ?? 'neutral'}>{c.status}</Badge>
            <span className="node-score" title={`${what} with its ${interval} and n (the minibatch score if not validated)`}>
              {candidateScore(c)}
            </span>
            {scoring.estimate && <span className="muted small">judge estimate</span>}
          </button>
          {children.length > 0 && <LineageTree nodes={children} selected={selected} onSelect={onSelect} scoring={scoring} level={level + 1} />}
        </li>
      ))}
    </ul>
  );
}

export function RunDetail({ id }: { id: string }) {
  const api = useApi();
  const { data, error, loading, reload } = useAsync<RunDetailData>((signal) => api.run(id, signal), `run:${id}`);
  const evals = useAsync((signal) => api.runEvaluations(id, signal), `run-evals:${id}`);
  const [picked, setPicked] = useState<string | null>(null);
  const candidates = useMemo(() => data?.candidates ?? [], [data]);
  const tree = useMemo(() => buildLineage(candidates), [candidates]);
  const rounds = useMemo(() => {
    const map = new Map<number, Candidate[]>();
    for (const c of candidates) map.set(c.round, [...(map.get(c.round) ?? []), c]);
    return [...map.entries()].sort((a, b) => a[0] - b[0]);
  }, [candidates]);

  if (error) {
    if (error instanceof ApiError && error.notFound) return <NotAvailable what="details for this run" />;
    return <ErrorBox error={error} onRetry={reload} />;
  }
  if (loading || !data) return <Loading label="Loading run…" />;
  const selectedId = picked ?? data.bestCandidateId ?? candidates[0]?.id ?? null;
  const selected = candidates.find((c) => c.id === selectedId) ?? null;
  const parent = selected?.parentId ? candidates.find((c) => c.id === selected.parentId) ?? null : null;
  const scoring: ScoreContext = { confidence: data.evidence?.confidence ?? selected?.scores?.validation?.confidence ?? null, estimate: !!data.evidence?.estimate };
  const ci = ciHeader(scoring.confidence);
  const est = scoring.estimate ? ' (judge estimate)' : '';

  return (
    <div>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link href="/optimization">Optimization</Link> <span aria-hidden="true">/</span> <span>Run {shortId(data.id)}</span>
      </nav>
      <PageHeader title={`Run ${shortId(data.id)} · ${data.agentId}`}>
        <RunStatus run={data} />
        <Link className="button" href={`/optimization/prompts/${encodeURIComponent(data.agentId)}`}>
          Prompt versions
        </Link>
      </PageHeader>
      <dl className="summary card">
        {(
          [
            ['Started', formatDateTime(data.startedAt)],
            ['Finished', formatDateTime(data.finishedAt)],
            [`Start on test${est} ${ci}`, runScore(data, 'baselineTest')],
            [`Best on test${est} ${ci}`, runScore(data, 'bestTest')],
            [`Best − start (paired)${est} ${ci}`, data.evidence ? `${formatInterval(data.evidence.difference, true)} · ${data.evidence.difference.wins} better, ${data.evidence.difference.losses} worse` : DASH],
            ['Split', data.evidence ? `${data.evidence.split.train} train / ${data.evidence.split.validation} validation / ${data.evidence.split.test} test` : DASH],
            ['Trajectories', formatNumber(data.trajectories)],
            ['LLM calls', formatNumber(data.llmCalls)],
            ['Spend', runSpend(data)],
            ...(data.heartbeatAt ? [['Last heartbeat', formatDateTime(data.heartbeatAt)]] : []),
            ['Evaluations', formatNumber(data.evaluations)],
            ['Candidates', formatNumber(candidates.length)],
          ] as [string, string][]
        ).map(([k, v]) => (
          <div key={k} className="summary-item">
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      {data.evidence && (
        <p className="notice" role="status">
          Result: <VerdictBadge evidence={data.evidence} /> — registered only when the {percent(data.evidence.confidence)} interval of best − start on the test set lies above {data.evidence.minImprovement}.
        </p>
      )}
      {data.error && <CodeBlock text={data.error} label="Run error" tone="error" />}
      {data.config && Object.keys(data.config).length > 0 && (
        <details className="disclosure card">
          <summary>Configuration</summary>
          <CodeBlock text={JSON.stringify(data.config, null, 2)} label="Run configuration" />
        </details>
      )}
      {candidates.length === 0 ? (
        <EmptyState title="No candidates yet" />
      ) : (
        <div className="run-grid">
          <section className="card" aria-labelledby="lineage-h">
            <h2 id="lineage-h">Candidates</h2>
            <ol className="rounds" aria-label="Rounds">
              {rounds.map(([round, list]) => {
                const top = topCandidate(list);
                return (
                  <li key={round}>
                    <strong>Round {round}</strong>{' '}
                    <span className="muted" title="The highest score among this round's candidates: a maximum over the candidates it selects from, so optimistic; the run's result is its test score.">
                      {list.length} candidate{list.length === 1 ? '' : 's'} · best {top ? `${candidateScore(top)}${est}, a maximum over candidates` : DASH}
                    </span>
                  </li>
                );
              })}
            </ol>
            <LineageTree nodes={tree} selected={selectedId} onSelect={setPicked} scoring={scoring} />
          </section>
          {selected && (
            <section className="card" aria-labelledby="cand-h">
              <h2 id="cand-h">
                Candidate <span className="mono">{shortId(selected.id)}</span> <Badge tone={CANDIDATE_TONE[selected.status] ?? 'neutral'}>{selected.status}</Badge>
              </h2>
              <dl className="summary inline">
                <div className="summary-item">
                  <dt>Round</dt>
                  <dd>{selected.round}</dd>
                </div>
                <div className="summary-item">
                  <dt>{`Minibatch score${est} ${ci}`}</dt>
                  <dd>{selected.scores?.minibatch ? formatInterval(selected.scores.minibatch) : formatScore(selected.minibatchScore)}</dd>
                </div>
                <div className="summary-item">
                  <dt>{`Validation score${est} ${ci}`}</dt>
                  <dd>{selected.scores?.validation ? formatInterval(selected.scores.validation) : formatScore(selected.validationScore)}</dd>
                </div>
                <div className="summary-item">
                  <dt>{`Test score${est} ${ci}`}</dt>
                  <dd>{formatInterval(selected.scores?.test)}</dd>
                </div>
                <div className="summary-item">
                  <dt>Evaluations</dt>
                  <dd>{formatNumber(selected.evaluations)}</dd>
                </div>
                <div className="summary-item">
                  <dt>Parent</dt>
                  <dd>
                    {parent ? (
                      <button type="button" className="link-button mono" onClick={() => setPicked(parent.id)}>
                        {shortId(parent.id)}
                      </button>
                    ) : (
                      'none (seed)'
                    )}
                  </dd>
                </div>
              </dl>
              <h3>Critique</h3>
              {selected.critique ? <CodeBlock text={selected.critique} label="Critique" /> : <p className="muted">No critique.</p>}
              <h3>{parent ? 'Prompt compared with its parent' : 'Prompt'}</h3>
              {parent ? (
                <DiffView before={parent.prompt} after={selected.prompt} beforeLabel={`Parent ${shortId(parent.id)} (round ${parent.round})`} afterLabel={`Candidate ${shortId(selected.id)} (round ${selected.round})`} />
              ) : (
                <CodeBlock text={selected.prompt} label="Prompt" />
              )}
            </section>
          )}
        </div>
      )}
      <section className="card" aria-labelledby="evidence-h">
        <h2 id="evidence-h">Evaluations</h2>
        <p className="muted small">Each cell is one evaluation of a candidate on a recorded task (1 passed, 0 failed); hover for the feedback. Only the starting prompt and the best candidate are scored on the test set.</p>
        {evals.error ? (
          evals.error instanceof ApiError && evals.error.notFound ? (
            <NotAvailable what="evaluations" />
          ) : (
            <ErrorBox error={evals.error} onRetry={evals.reload} />
          )
        ) : !evals.data ? (
          <Loading />
        ) : (
          <EvidenceGrid candidates={candidates} evaluations={evals.data.evaluations} />
        )}
      </section>
    </div>
  );
}

export function PromptVersions({ agentId }: { agentId: string }) {
  const api = useApi();
  const { data, error, loading, reload } = useAsync((signal) => api.prompts(agentId, signal), `prompts:${agentId}`);
  const [confirming, setConfirming] = useState<number | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [compare, setCompare] = useState<number | null>(null);
  const prompts: Prompt[] = data?.prompts ?? [];

  // Promote shows the version's evidence first (PromoteDialog), like the canary panel does.
  const promoted = (version: number) => {
    setConfirming(null);
    setMessage(`Version ${version} is now the promoted prompt of ${agentId}.`);
    reload();
  };

  const missing = error instanceof ApiError && error.notFound;
  const comparing = compare !== null ? prompts.find((p) => p.version === compare) : undefined;
  const previous = comparing ? prompts.filter((p) => p.version < comparing.version).sort((a, b) => b.version - a.version)[0] : undefined;

  return (
    <div>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link href="/optimization">Optimization</Link> <span aria-hidden="true">/</span> <span>Prompt versions</span>
      </nav>
      <PageHeader title={`Prompt versions · ${agentId}`}>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </PageHeader>
      {message && (
        <p className="notice" role="status">
          {message}
        </p>
      )}
      {missing ? (
        <NotAvailable what="prompt versions" />
      ) : error ? (
        <ErrorBox error={error} onRetry={reload} />
      ) : loading && !data ? (
        <Loading />
      ) : prompts.length === 0 ? (
        <EmptyState title={`No prompt versions for ${agentId}`} />
      ) : (
        <div className="prompt-list">
          <RolloutPanel agentId={agentId} prompts={prompts} onChange={reload} />
          {prompts.map((p) => (
            <article key={p.version} className={p.promoted ? 'card prompt promoted' : 'card prompt'} aria-labelledby={`pv-${p.version}`}>
              <div className="section-head">
                <h2 id={`pv-${p.version}`}>
                  Version {p.version} {p.promoted ? <Badge tone="ok">promoted</Badge> : <Badge tone="neutral">candidate</Badge>}
                  {p.evaluator && <span className="muted small"> evidence: {p.evaluator === 'judge' ? 'judge estimate' : p.evaluator}</span>}
                </h2>
                <div className="toolbar">
                  <span className="muted small">{formatDateTime(p.createdAt)}</span>
                  {p.sourceRunId && (
                    <Link href={`/optimization/runs/${encodeURIComponent(p.sourceRunId)}`}>from run {shortId(p.sourceRunId)}</Link>
                  )}
                  {prompts.some((o) => o.version < p.version) && (
                    <button type="button" aria-pressed={compare === p.version} onClick={() => setCompare(compare === p.version ? null : p.version)}>
                      {compare === p.version ? 'Hide diff' : 'Diff with previous'}
                    </button>
                  )}
                  <button
                    type="button"
                    className="primary"
                    disabled={p.promoted || confirming !== null}
                    onClick={() => {
                      setMessage(null);
                      setConfirming(p.version);
                    }}
                  >
                    {p.promoted ? 'Promoted' : 'Promote…'}
                  </button>
                </div>
              </div>
              {confirming === p.version && (
                <PromoteDialog agentId={agentId} version={p.version} prompts={prompts} onDone={() => promoted(p.version)} onCancel={() => setConfirming(null)} />
              )}
              {p.note && <p>{p.note}</p>}
              {compare === p.version && previous ? (
                <DiffView before={previous.text} after={p.text} beforeLabel={`Version ${previous.version}`} afterLabel={`Version ${p.version}`} />
              ) : (
                <CodeBlock text={p.text} label={`Prompt version ${p.version}`} />
              )}
            </article>
          ))}
        </div>
      )}
    </div>
  );
}
