/** Line diff producing rows for a side-by-side view. */
import { diffArrays } from 'diff';

export type DiffKind = 'same' | 'removed' | 'added' | 'changed';

export interface DiffRow {
  kind: DiffKind;
  left: string | null;
  right: string | null;
  leftNo: number | null;
  rightNo: number | null;
}

type Op = { op: '=' | '-' | '+'; line: string };

/** Minimal line edit script (Myers' algorithm, from the `diff` package: a quadratic LCS table
 * was 13× to 300× slower on 200- to 4,000-line prompts and gave up past 16M cells; see
 * bench/diff.bench.ts). */
function lineOps(a: string[], b: string[]): Op[] {
  const ops: Op[] = [];
  for (const change of diffArrays(a, b)) {
    const op = change.added ? '+' : change.removed ? '-' : '=';
    for (const line of change.value) ops.push({ op, line });
  }
  return ops;
}

export function splitLines(text: string): string[] {
  if (text === '') return [];
  return text.replace(/\r\n/g, '\n').split('\n');
}

/**
 * Diff `before` against `after` line by line. Runs of removals followed by additions are
 * paired into `changed` rows so the two sides line up.
 */
export function diffLines(before: string, after: string): DiffRow[] {
  const ops = lineOps(splitLines(before), splitLines(after));
  const rows: DiffRow[] = [];
  let leftNo = 0;
  let rightNo = 0;
  let k = 0;
  while (k < ops.length) {
    const op = ops[k] as Op;
    if (op.op === '=') {
      leftNo++;
      rightNo++;
      rows.push({ kind: 'same', left: op.line, right: op.line, leftNo, rightNo });
      k++;
      continue;
    }
    const removed: string[] = [];
    const added: string[] = [];
    while (k < ops.length && (ops[k] as Op).op !== '=') {
      const cur = ops[k] as Op;
      (cur.op === '-' ? removed : added).push(cur.line);
      k++;
    }
    const pairs = Math.max(removed.length, added.length);
    for (let p = 0; p < pairs; p++) {
      const left = removed[p] ?? null;
      const right = added[p] ?? null;
      const kind: DiffKind = left !== null && right !== null ? 'changed' : left !== null ? 'removed' : 'added';
      rows.push({
        kind,
        left,
        right,
        leftNo: left !== null ? ++leftNo : null,
        rightNo: right !== null ? ++rightNo : null,
      });
    }
  }
  return rows;
}

export function diffSummary(rows: DiffRow[]): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const row of rows) {
    if (row.right !== null && row.kind !== 'same') added++;
    if (row.left !== null && row.kind !== 'same') removed++;
  }
  return { added, removed };
}
