// Benchmark: the prompt diff's edit script, the `diff` package's Myers diff (what
// src/lib/diff.ts uses) against the previous quadratic LCS table (bench/lcs-baseline.ts), on
// large prompts. `npm run bench:diff`. Prints time per diff (vitest bench) and, for each case,
// how many lines each finds unchanged (both are minimal line diffs, so any shortfall is the
// LCS table's replace-all fallback above 16M cells).
import { diffArrays } from 'diff';
import { bench, describe } from 'vitest';
import { diffLines, splitLines } from '../src/lib/diff';
import { lcsLineOps } from './lcs-baseline';

/** Deterministic PRNG (mulberry32), so every run diffs the same prompts. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A prompt of `lines` lines and a revision with `fraction` of them edited, inserted or deleted. */
function pair(lines: number, fraction: number, seed: number): [string, string] {
  const r = rng(seed);
  const before = Array.from({ length: lines }, (_, i) => `Rule ${i}: when the tool fails with code ${Math.floor(r() * 1e6)}, retry once.`);
  const after: string[] = [];
  for (const line of before) {
    const x = r();
    if (x < fraction / 3) continue; // deleted
    if (x < (2 * fraction) / 3) after.push(`${line} (edited)`);
    else after.push(line);
    if (r() < fraction / 3) after.push(`New rule ${Math.floor(r() * 1e6)}.`);
  }
  return [before.join('\n'), after.join('\n')];
}

const cases: [string, number, number][] = [
  ['200 lines, 5% edited', 200, 0.05],
  ['2,000 lines, 5% edited', 2_000, 0.05],
  ['4,000 lines, 2% edited', 4_000, 0.02],
  ['10,000 lines, 1% edited', 10_000, 0.01],
];

for (const [name, lines, fraction] of cases) {
  const [before, after] = pair(lines, fraction, lines);
  const lcs = lcsLineOps(splitLines(before), splitLines(after)).filter((op) => op.op === '=').length;
  const myers = diffLines(before, after).filter((row) => row.kind === 'same').length;
  const direct = diffArrays(splitLines(before), splitLines(after))
    .filter((c) => !c.added && !c.removed)
    .reduce((n, c) => n + c.count, 0);
  console.log(`${name}: unchanged lines found: LCS table ${lcs}, diff package ${myers} (diffArrays alone ${direct})`);
  describe(name, () => {
    bench('previous LCS table (baseline)', () => {
      lcsLineOps(splitLines(before), splitLines(after));
    });
    bench('diff package (diffArrays)', () => {
      diffArrays(splitLines(before), splitLines(after));
    });
  });
}
