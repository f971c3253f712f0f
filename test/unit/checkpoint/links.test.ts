// A model folder's files must be regular files inside the folder (or, for a Hugging Face cache snapshot,
// inside its blobs/): a link elsewhere is refused before anything is read or copied, so a merge can never
// publish a local file (a key) as a tokenizer file; a FIFO is refused before it is opened (the open would
// block). The same for the external data files of an ONNX graph.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointWriter, openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { OnnxGraph } from '../../../src/graph/onnx-graph.ts';
import { decodeModel, encodeModel } from '../../../src/graph/onnx-proto.ts';
import { MICRO_ZOO, tempDir } from './pico-safetensors.ts';

const tmp = tempDir();
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const BASE = path.join(MICRO_ZOO, 'base');
const secret = path.join(tmp, 'id_ed25519');
fs.writeFileSync(secret, 'PRIVATE KEY\n');

/** A copy of the zoo's base (without its graph) under `dir`. */
function copyBase(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors', 'byte_tokenizer.json', 'generation_config.json'])
    fs.copyFileSync(path.join(BASE, f), path.join(dir, f));
  return dir;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof EvomergeError) return `${err.code}: ${err.message}`;
    throw err;
  }
  return undefined;
}

function writeCopy(from: string, out: string): void {
  const m = openModelDir(from);
  try {
    const plan = m.tensors.tensorNames().map((name) => ({ name, shape: m.tensors.tensorInfo(name).shape }));
    const w = new CheckpointWriter({
      outDir: out,
      dtype: 'F32',
      shardSizeBytes: 5e9,
      plan,
      config: m.config,
      copyFilesFrom: from,
    });
    for (const { name } of plan) w.writeTensor(name, m.tensors.readTensor(name));
    w.finish();
  } finally {
    m.close();
  }
}

describe('links in a model folder', () => {
  it('a tokenizer file linked to a file outside is refused, nothing is written and the key is not copied', () => {
    const dir = copyBase(path.join(tmp, 'tok-link'));
    fs.rmSync(path.join(dir, 'byte_tokenizer.json'));
    fs.symlinkSync(secret, path.join(dir, 'byte_tokenizer.json'));
    const out = path.join(tmp, 'tok-out');
    expect(codeOf(() => writeCopy(dir, out))).toBe(
      `checkpoint.link_outside: ${dir}/byte_tokenizer.json: is a link to ${secret}, outside the model folder ${dir}; ` +
        `refusing to read or copy it`,
    );
    expect(fs.existsSync(out)).toBe(false);
  });

  it('weights or config linked outside are refused; links inside the folder and into a HF cache blobs/ are fine', () => {
    const dir = copyBase(path.join(tmp, 'st-link'));
    fs.renameSync(path.join(dir, 'model.safetensors'), path.join(tmp, 'elsewhere.safetensors'));
    fs.symlinkSync(path.join(tmp, 'elsewhere.safetensors'), path.join(dir, 'model.safetensors'));
    expect(codeOf(() => openModelDir(dir))).toMatch(
      /^checkpoint\.link_outside: .*st-link\/model\.safetensors: is a link to/,
    );
    fs.rmSync(path.join(dir, 'config.json'));
    fs.symlinkSync(path.join(BASE, 'config.json'), path.join(dir, 'config.json'));
    expect(codeOf(() => openModelDir(dir))).toMatch(/^checkpoint\.link_outside: .*st-link\/config\.json/);

    const inside = copyBase(path.join(tmp, 'inside-link'));
    fs.renameSync(path.join(inside, 'model.safetensors'), path.join(inside, 'weights.bin'));
    fs.symlinkSync('weights.bin', path.join(inside, 'model.safetensors'));
    expect(codeOf(() => openModelDir(inside).close())).toBeUndefined();

    const cache = path.join(tmp, 'hub', 'models--zoo--base');
    const snap = path.join(cache, 'snapshots', 'abc123');
    fs.mkdirSync(snap, { recursive: true });
    fs.mkdirSync(path.join(cache, 'blobs'));
    for (const f of ['config.json', 'model.safetensors']) {
      fs.copyFileSync(path.join(BASE, f), path.join(cache, 'blobs', `blob-${f}`));
      fs.symlinkSync(`../../blobs/blob-${f}`, path.join(snap, f));
    }
    expect(codeOf(() => openModelDir(snap).close())).toBeUndefined();
  });

  it('a FIFO as model file is refused before it is opened', () => {
    const dir = copyBase(path.join(tmp, 'fifo'));
    fs.rmSync(path.join(dir, 'model.safetensors'));
    execFileSync('mkfifo', [path.join(dir, 'model.safetensors')]);
    expect(codeOf(() => openModelDir(dir))).toBe(
      `checkpoint.not_a_file: ${dir}/model.safetensors: not a regular file (a FIFO); refusing to read it`,
    );
  });

  it('an ONNX external data file linked outside the graph folder is refused', () => {
    const dir = path.join(tmp, 'onnx');
    fs.mkdirSync(dir);
    const model = decodeModel(fs.readFileSync(path.join(BASE, 'model.onnx')));
    const t = model.graph!.initializer![0]!;
    fs.writeFileSync(path.join(tmp, 'outside.bin'), t.rawData!);
    fs.symlinkSync(path.join(tmp, 'outside.bin'), path.join(dir, 'weights.bin'));
    t.externalData = [
      { key: 'location', value: 'weights.bin' },
      { key: 'offset', value: '0' },
      { key: 'length', value: String(t.rawData!.byteLength) },
    ];
    t.dataLocation = 1;
    delete t.rawData;
    const file = path.join(dir, 'model.onnx');
    fs.writeFileSync(file, encodeModel(model));
    const graph = OnnxGraph.load(file);
    expect(codeOf(() => graph.initializerData(t.name!))).toMatch(
      new RegExp(
        `^checkpoint\\.link_outside: .*onnx/weights\\.bin: initializer "${t.name!.replace(/\./g, '\\.')}": is a link to`,
      ),
    );
  });
});
