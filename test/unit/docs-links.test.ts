// The documentation's relative links hold: every `[text](path)` and `[text](path#anchor)` of README.md and
// docs/**/*.md reaches an existing file, and an anchor reaches a heading of that file under GitHub's slug rules.
// The README stays a front door: at most 300 lines.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const README_MAX_LINES = 300;

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return markdownFiles(full);
    return name.endsWith('.md') ? [full] : [];
  });
}

/** The text outside fenced code blocks and inline code spans, where links are links. */
function proseOf(markdown: string): string {
  const kept: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && marker !== undefined) fence = marker[0]!;
    else if (fence !== undefined && marker !== undefined && marker[0] === fence) fence = undefined;
    else if (fence === undefined) kept.push(line.replace(/`[^`\n]*`/g, ''));
  }
  return kept.join('\n');
}

/** The targets of inline links and images: `[text](target)` or `[text](target "title")`. */
function linkTargets(markdown: string): string[] {
  const out: string[] = [];
  const prose = proseOf(markdown);
  const re = /!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;
  for (let m = re.exec(prose); m; m = re.exec(prose)) out.push(m[1]!);
  return out;
}

/** GitHub's anchor for a heading: lowercase, punctuation removed except '-' and '_', each space → '-'. */
function slug(heading: string): string {
  return heading
    .replace(/<!--.*?-->/g, '')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor of a markdown file: its headings' slugs, repeats numbered -1, -2 … as GitHub does. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of headingsOf(markdown)) {
    const base = slug(line);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Heading texts (ATX `#` … `######`) outside fenced code blocks. */
function headingsOf(markdown: string): string[] {
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && marker !== undefined) fence = marker[0]!;
    else if (fence !== undefined && marker !== undefined && marker[0] === fence) fence = undefined;
    else if (fence === undefined) {
      const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
      if (h) out.push(h[1]!);
    }
  }
  return out;
}

/** The broken relative links of one markdown file, as `file: target (why)`. */
function brokenLinks(file: string, markdown: string): string[] {
  const broken: string[] = [];
  for (const target of linkTargets(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …
    const hash = target.indexOf('#');
    const filePart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
    const resolved = filePart === '' ? file : path.resolve(path.dirname(file), filePart);
    const where = `${path.relative(ROOT, file)}: ${target}`;
    if (!existsSync(resolved)) {
      broken.push(`${where} (no such file)`);
      continue;
    }
    if (anchor === undefined || anchor === '') continue;
    if (statSync(resolved).isDirectory() || !resolved.endsWith('.md')) {
      broken.push(`${where} (an anchor into a file that is not markdown)`);
      continue;
    }
    if (!anchorsOf(readFileSync(resolved, 'utf8')).has(anchor)) broken.push(`${where} (no heading "#${anchor}")`);
  }
  return broken;
}

const files = [path.join(ROOT, 'README.md'), ...markdownFiles(path.join(ROOT, 'docs'))];

describe('documentation links', () => {
  it('finds the README and the docs pages', () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it('every relative link reaches a file, and every #anchor a heading of it', () => {
    const broken = files.flatMap((f) => brokenLinks(f, readFileSync(f, 'utf8')));
    expect(broken).toEqual([]);
  });

  it(`the README has at most ${README_MAX_LINES} lines`, () => {
    const lines = readFileSync(path.join(ROOT, 'README.md'), 'utf8').replace(/\n$/, '').split('\n').length;
    expect(lines).toBeLessThanOrEqual(README_MAX_LINES);
  });

  it('the checker itself catches a missing file, a missing anchor, and not a link inside code', () => {
    const readme = path.join(ROOT, 'README.md');
    expect(brokenLinks(readme, '[x](docs/no-such-page.md)')).toHaveLength(1);
    expect(brokenLinks(readme, '[x](docs/architecture.md#no-such-heading)')).toHaveLength(1);
    expect(brokenLinks(readme, '[x](docs/architecture.md#the-rules-and-why)')).toEqual([]);
    expect(brokenLinks(readme, '`[x](nowhere.md)`\n\n```md\n[x](nowhere.md)\n```')).toEqual([]);
    expect(slug('Search that wins on held-out test: zoo-v3, the val pick, LCB')).toBe(
      'search-that-wins-on-held-out-test-zoo-v3-the-val-pick-lcb',
    );
    expect(slug('PS, DFS and PS + DFS')).toBe('ps-dfs-and-ps--dfs');
    expect(slug("The job queue's overhead")).toBe('the-job-queues-overhead');
  });
});
