import { memo, useCallback, useId, useState, type Ref } from 'react';
import { formatClock, formatDuration, previewValue, prettyValue } from '../lib/format';
import { stepKind, subagentOf, type Timeline } from '../lib/steps';
import type { Step } from '../lib/types';
import { Badge } from './common';
import { VirtualList, type VirtualListHandle } from './VirtualList';

const TEXT_LIMIT = 20_000;

/** Plain-text value with a cap so that one huge output cannot freeze the page. */
function ValueBlock({ label, value, tone }: { label: string; value: unknown; tone?: 'error' }) {
  const [full, setFull] = useState(false);
  const text = prettyValue(value);
  const clipped = !full && text.length > TEXT_LIMIT;
  return (
    <section className="value-block">
      <h4>{label}</h4>
      {text === '' ? (
        <p className="muted">(none)</p>
      ) : (
        <>
          <pre className={`code${tone === 'error' ? ' code-error' : ''}`} aria-label={label} tabIndex={0}>
            {clipped ? text.slice(0, TEXT_LIMIT) : text}
          </pre>
          {clipped && (
            <button type="button" className="link-button" onClick={() => setFull(true)}>
              Show all {text.length.toLocaleString('en-US')} characters
            </button>
          )}
        </>
      )}
    </section>
  );
}

interface RowProps {
  step: Step;
  start: number;
  end: number;
  span: number;
  expanded: boolean;
  onToggle: (stepNumber: number) => void;
  /** nesting under a spawning Task/Agent step (0: top level) */
  depth?: number;
  /** step number of the spawning step */
  parentNumber?: number;
}

export const StepRow = memo(function StepRow({ step, start, end, span, expanded, onToggle, depth = 0, parentNumber }: RowProps) {
  const bodyId = useId();
  const sub = subagentOf(step);
  const kind = stepKind(step);
  const left = (start / span) * 100;
  const width = Math.max(0.4, ((end - start) / span) * 100);
  // assistant text is shown as text (React escapes it): never interpreted as HTML
  const preview = step.error ? step.error : kind === 'message' ? previewValue(step.toolOutput, 140) : previewValue(step.toolInput, 140);
  const hasMeta = step.metadata && Object.keys(step.metadata).length > 0;
  const nested = depth > 0;
  return (
    <div
      className={`step step-kind-${kind}${step.error ? ' step-has-error' : ''}${sub ? ' step-subagent' : ''}${nested ? ' step-nested' : ''}${expanded ? ' step-open' : ''}`}
      style={nested ? { paddingLeft: `${Math.min(depth, 6) * 18}px` } : undefined}
      data-depth={depth}
    >
      <button
        type="button"
        className="step-head"
        aria-expanded={expanded}
        aria-controls={expanded ? bodyId : undefined}
        data-focus-target=""
        onClick={() => onToggle(step.stepNumber)}
      >
        <span className="step-chevron" aria-hidden="true">
          {expanded ? '▾' : '▸'}
        </span>
        <span className="step-main">
          {nested && (
            <span className="step-nest" title={parentNumber !== undefined ? `Inside the subagent of step #${parentNumber}` : 'Inside a subagent'}>
              ↳
            </span>
          )}
          <span className="step-no">#{step.stepNumber}</span>
          <span className="step-tool">{kind === 'message' ? 'Assistant' : step.toolName}</span>
          {kind === 'message' && <Badge tone="neutral">message</Badge>}
          {kind === 'event' && <Badge tone="neutral">event</Badge>}
          {sub && (
            <Badge tone="accent" title={`Subagent${sub.type ? ` type ${sub.type}` : ''}${sub.id ? ` id ${sub.id}` : ''}`}>
              subagent{sub.type ? `: ${sub.type}` : ''}
            </Badge>
          )}
          {step.error && <Badge tone="bad">error</Badge>}
          <span className="step-preview">{preview}</span>
        </span>
        <span className="step-time">{formatClock(step.timestamp)}</span>
        <span className="step-duration">{formatDuration(step.durationMs)}</span>
        <span className="step-bar" aria-hidden="true">
          <span className={step.error ? 'step-bar-fill bad' : sub ? 'step-bar-fill sub' : 'step-bar-fill'} style={{ left: `${left}%`, width: `${width}%` }} />
        </span>
      </button>
      {expanded && (
        <div className="step-body" id={bodyId}>
          {step.error && <ValueBlock label="Error" value={step.error} tone="error" />}
          {kind === 'message' ? (
            <ValueBlock label="Text" value={typeof step.toolOutput === 'string' ? step.toolOutput : prettyValue(step.toolOutput)} />
          ) : (
            <div className="step-io">
              <ValueBlock label="Input" value={step.toolInput} />
              <ValueBlock label="Output" value={step.toolOutput} />
            </div>
          )}
          {(hasMeta || step.toolUseId) && (
            <dl className="step-meta">
              {step.toolUseId && (
                <>
                  <dt>Tool use id</dt>
                  <dd>{step.toolUseId}</dd>
                </>
              )}
              {sub?.id && (
                <>
                  <dt>Subagent id</dt>
                  <dd>{sub.id}</dd>
                </>
              )}
              {sub?.type && (
                <>
                  <dt>Subagent type</dt>
                  <dd>{sub.type}</dd>
                </>
              )}
              {hasMeta && (
                <>
                  <dt>Metadata</dt>
                  <dd>
                    <pre className="code">{prettyValue(step.metadata)}</pre>
                  </dd>
                </>
              )}
            </dl>
          )}
        </div>
      )}
    </div>
  );
});

export function StepList({
  steps,
  timeline,
  expanded,
  onToggle,
  handleRef,
  followTail,
  depth,
  parent,
}: {
  steps: Step[];
  timeline: Timeline;
  expanded: Set<number>;
  onToggle: (stepNumber: number) => void;
  handleRef?: Ref<VirtualListHandle>;
  followTail?: boolean;
  /** nesting depth by step number */
  depth?: Map<number, number>;
  /** spawning step by step number */
  parent?: Map<number, number>;
}) {
  const itemKey = useCallback((i: number) => steps[i]?.stepNumber ?? i, [steps]);
  const renderItem = useCallback(
    (i: number) => {
      const step = steps[i] as Step;
      const t = timeline.timings[i] ?? { start: 0, end: 0 };
      return (
        <StepRow
          step={step}
          start={t.start}
          end={t.end}
          span={timeline.span}
          expanded={expanded.has(step.stepNumber)}
          onToggle={onToggle}
          depth={depth?.get(step.stepNumber) ?? 0}
          parentNumber={parent?.get(step.stepNumber)}
        />
      );
    },
    [steps, timeline, expanded, onToggle, depth, parent],
  );
  return (
    <VirtualList
      count={steps.length}
      estimateHeight={41}
      itemKey={itemKey}
      renderItem={renderItem}
      label={`Steps (${steps.length.toLocaleString('en-US')})`}
      className="step-list"
      handleRef={handleRef}
      followTail={followTail}
    />
  );
}
