// The set-up: npm runs in this repository without warnings (no project config npm does not know), and the CUDA
// download of onnxruntime-node's install script is skipped by its own environment variable, which .ci/run and
// the README's set-up lines set.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '../..');

describe('set-up', () => {
  it('npm reads this project config without a warning', () => {
    const r = spawnSync('npm', ['config', 'get', 'registry'], {
      cwd: repo,
      encoding: 'utf8',
      env: { ...process.env, CI: 'true' },
    });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toMatch(/Unknown (project|user|env|cli) config/);
  });

  it('.ci/run and the README skip the CUDA download before npm ci', () => {
    const run = readFileSync(path.join(repo, '.ci/run'), 'utf8');
    expect(run).toMatch(/^export ONNXRUNTIME_NODE_INSTALL=skip\nnpm ci$/m);
    const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
    const setups = readme.split('\n').filter((l) => l.includes('npm ci &&'));
    expect(setups).toHaveLength(2);
    for (const line of setups) expect(line).toContain('ONNXRUNTIME_NODE_INSTALL=skip npm ci');
  });

  it("onnxruntime-node's install script reads that variable: it exits at once, downloading nothing", () => {
    const script = path.join(repo, 'node_modules/onnxruntime-node/script/install.js');
    // were the variable not read, the download would fail at once (global-agent's proxy: a closed port)
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ONNXRUNTIME_NODE_INSTALL: 'skip',
      GLOBAL_AGENT_HTTPS_PROXY: 'http://127.0.0.1:9',
    };
    for (const k of Object.keys(env)) if (k.toLowerCase().startsWith('npm_config_onnxruntime')) delete env[k];
    const started = Date.now();
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', env, timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toBe('');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
