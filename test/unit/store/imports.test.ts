// Import direction (STYLE §8.2): src/store may import only what is listed here.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

const dir = new URL('../../../src/store/', import.meta.url);
// node:os gives the host name a database lock records; node:crypto hashes that host name into the lock temp files' tag.
const allowed = [
  /^\.\/[a-z-]+\.ts$/,
  /^\.\.\/errors\.ts$/,
  /^\.\.\/estimate\.ts$/,
  /^\.\.\/folders\.ts$/,
  /^better-sqlite3$/,
  /^node:(fs|path|os|crypto)$/,
];

describe('src/store imports', () => {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.ts'));
  it.each(files)('%s imports only allowed modules', (file) => {
    const text = fs.readFileSync(new URL(file, dir), 'utf8');
    const specifiers = [...text.matchAll(/^\s*(?:import|export)[^'"]*?from\s+'([^']+)'/gm)].map((m) => m[1]);
    for (const s of specifiers)
      expect(
        allowed.some((re) => re.test(s)),
        `${file} imports ${s}`,
      ).toBe(true);
  });
});
