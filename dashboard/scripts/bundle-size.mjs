// Prints the size of every file in dist/ (raw and gzip) and the totals after `vite build`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const kb = (n) => `${(n / 1024).toFixed(1)} kB`;
let raw = 0;
let gz = 0;
const rows = walk(dist)
  .sort()
  .map((path) => {
    const bytes = readFileSync(path);
    const zipped = gzipSync(bytes, { level: 9 }).length;
    raw += bytes.length;
    gz += zipped;
    return [relative(dist, path), kb(bytes.length), kb(zipped)];
  });
const width = Math.max(...rows.map((r) => r[0].length), 5);
console.log('\nDashboard bundle size (dist/):');
for (const [name, size, zipped] of rows) console.log(`  ${name.padEnd(width)}  ${size.padStart(10)}  gzip ${zipped.padStart(9)}`);
console.log(`  ${'total'.padEnd(width)}  ${kb(raw).padStart(10)}  gzip ${kb(gz).padStart(9)}`);
