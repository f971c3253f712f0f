// Fingerprints of a model folder's safetensors files — each file's size and the sha256 of its header (tensor
// names, dtypes, shapes, offsets) — read without touching tensor data: cheap enough to check on every job.
// The coordinator records them with the campaign; a worker compares its own copies before scoring.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { EvomergeError } from '../errors.ts';
import type { ModelFileRecord } from '../store/records.ts';

/** The safetensors files of a model folder, sorted by name, with their size and header hash. */
export function fingerprintModelDir(dir: string): ModelFileRecord[] {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith('.safetensors'))
      .sort();
  } catch (err) {
    throw new EvomergeError(
      'scorer.refused',
      `cannot read the model folder: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { file: dir },
    );
  }
  if (names.length === 0)
    throw new EvomergeError('scorer.refused', 'no .safetensors file in this model folder', { file: dir });
  return names.map((file) => ({
    modelDir: dir,
    file,
    size: statSync(path.join(dir, file)).size,
    headerSha256: headerHash(path.join(dir, file)),
  }));
}

function headerHash(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    if (readSync(fd, len, 0, 8, 0) !== 8)
      throw new EvomergeError('scorer.refused', 'shorter than a safetensors header', { file });
    const n = Number(len.readBigUInt64LE(0));
    if (!Number.isSafeInteger(n) || n > 100 * 1024 * 1024)
      throw new EvomergeError('scorer.refused', `implausible safetensors header length ${n}`, { file });
    const header = Buffer.alloc(n);
    if (readSync(fd, header, 0, n, 8) !== n)
      throw new EvomergeError('scorer.refused', 'truncated safetensors header', { file });
    return createHash('sha256').update(len).update(header).digest('hex');
  } finally {
    closeSync(fd);
  }
}

/**
 * The first difference between the files a campaign recorded for a folder and the local ones, as one line
 * naming the file (undefined when they agree): a worker must not score a different model under the same name.
 */
export function modelFilesDiffer(
  recorded: readonly ModelFileRecord[],
  local: readonly ModelFileRecord[],
): EvomergeError | undefined {
  for (const r of recorded) {
    const l = local.find((x) => x.file === r.file);
    const file = path.join(r.modelDir, r.file);
    if (!l)
      return new EvomergeError('scorer.refused', "missing on this worker (the coordinator's campaign has it)", {
        file,
      });
    if (l.size !== r.size)
      return new EvomergeError(
        'scorer.refused',
        `differs from the campaign's copy: ${l.size} bytes here, ${r.size} recorded`,
        { file, field: 'size' },
      );
    if (l.headerSha256 !== r.headerSha256) {
      return new EvomergeError(
        'scorer.refused',
        `differs from the campaign's copy: header sha256 ${l.headerSha256.slice(0, 12)}… here, ` +
          `${r.headerSha256.slice(0, 12)}… recorded`,
        { file, field: 'header' },
      );
    }
  }
  const extra = local.find((l) => !recorded.some((r) => r.file === l.file));
  if (extra)
    return new EvomergeError('scorer.refused', "not in the campaign's record of this model (the folder differs)", {
      file: path.join(extra.modelDir, extra.file),
    });
  return undefined;
}
