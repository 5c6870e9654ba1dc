/** Line diff (LCS) producing rows for a side-by-side view. */

export type DiffKind = 'same' | 'removed' | 'added' | 'changed';

export interface DiffRow {
  kind: DiffKind;
  left: string | null;
  right: string | null;
  leftNo: number | null;
  rightNo: number | null;
}

type Op = { op: '=' | '-' | '+'; line: string };

/** Largest table (cells) the quadratic LCS may allocate before falling back to replace-all. */
const MAX_CELLS = 16_000_000;

function lineOps(a: string[], b: string[]): Op[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const head: Op[] = a.slice(0, start).map((line) => ({ op: '=', line }));
  const tail: Op[] = a.slice(endA).map((line) => ({ op: '=', line }));
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const n = midA.length;
  const m = midB.length;
  const middle: Op[] = [];
  if (n === 0) {
    for (const line of midB) middle.push({ op: '+', line });
  } else if (m === 0) {
    for (const line of midA) middle.push({ op: '-', line });
  } else if ((n + 1) * (m + 1) > MAX_CELLS) {
    for (const line of midA) middle.push({ op: '-', line });
    for (const line of midB) middle.push({ op: '+', line });
  } else {
    // lcs[i][j] = LCS length of midA[i..] and midB[j..]
    const width = m + 1;
    const lcs = new Uint32Array((n + 1) * width);
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * width + j] =
          midA[i] === midB[j]
            ? (lcs[(i + 1) * width + j + 1] ?? 0) + 1
            : Math.max(lcs[(i + 1) * width + j] ?? 0, lcs[i * width + j + 1] ?? 0);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (midA[i] === midB[j]) {
        middle.push({ op: '=', line: midA[i] as string });
        i++;
        j++;
      } else if ((lcs[(i + 1) * width + j] ?? 0) >= (lcs[i * width + j + 1] ?? 0)) {
        middle.push({ op: '-', line: midA[i] as string });
        i++;
      } else {
        middle.push({ op: '+', line: midB[j] as string });
        j++;
      }
    }
    while (i < n) middle.push({ op: '-', line: midA[i++] as string });
    while (j < m) middle.push({ op: '+', line: midB[j++] as string });
  }
  return [...head, ...middle, ...tail];
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
