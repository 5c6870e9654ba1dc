// The dashboard's previous line diff (a quadratic LCS table, replace-all past 16M cells), kept
// as the baseline of bench/diff.bench.ts.

export type Op = { op: '=' | '-' | '+'; line: string };

/** Largest table (cells) the quadratic LCS may allocate before falling back to replace-all. */
const MAX_CELLS = 16_000_000;

export function lcsLineOps(a: string[], b: string[]): Op[] {
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

