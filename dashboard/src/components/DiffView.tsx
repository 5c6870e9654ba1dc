import { useMemo } from 'react';
import { diffLines, diffSummary } from '../lib/diff';

/** Side-by-side line diff of two texts, rendered as text (never HTML). */
export function DiffView({ before, after, beforeLabel, afterLabel }: { before: string; after: string; beforeLabel: string; afterLabel: string }) {
  const rows = useMemo(() => diffLines(before, after), [before, after]);
  const summary = diffSummary(rows);
  const unchanged = summary.added === 0 && summary.removed === 0;
  return (
    <div className="diff">
      <p className="diff-summary muted" role="status">
        {unchanged ? 'No changes.' : `${summary.removed} line${summary.removed === 1 ? '' : 's'} removed, ${summary.added} line${summary.added === 1 ? '' : 's'} added.`}
      </p>
      <div className="diff-scroll" tabIndex={0} role="region" aria-label={`Diff of ${beforeLabel} and ${afterLabel}`}>
        <table className="diff-table">
          <colgroup>
            <col className="diff-no" />
            <col />
            <col className="diff-no" />
            <col />
          </colgroup>
          <thead>
            <tr>
              <th colSpan={2} scope="colgroup">{beforeLabel}</th>
              <th colSpan={2} scope="colgroup">{afterLabel}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row, i) => (
              <tr key={i} className={`diff-row diff-${row.kind}`}>
                <td className="diff-no">{row.leftNo ?? ''}</td>
                <td className={row.left !== null && row.kind !== 'same' ? 'diff-cell diff-del' : 'diff-cell'}>
                  {row.left !== null && row.kind !== 'same' && <span className="sr-only">removed: </span>}
                  {row.left ?? ''}
                </td>
                <td className="diff-no">{row.rightNo ?? ''}</td>
                <td className={row.right !== null && row.kind !== 'same' ? 'diff-cell diff-ins' : 'diff-cell'}>
                  {row.right !== null && row.kind !== 'same' && <span className="sr-only">added: </span>}
                  {row.right ?? ''}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
