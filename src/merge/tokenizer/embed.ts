// Each model's embed_tokens / lm_head rows permuted onto the output vocabulary before the merge method runs
// (mergekit tokenizer/embed.py PermutedEmbeddings): a model's own row where it has the token, else the token's
// default row (assign_embedding_sources, compute_default_embedding), every model taking the default where the
// token is forced; rows past the vocabulary (pad_to_multiple_of) are the mean of the model's permuted rows.
import { createHash } from 'node:crypto';
import { EvomergeError } from '../../errors.ts';
import { roundToDType } from '../../checkpoint/dtype.ts';
import type { DType } from '../../checkpoint/tensor-source.ts';
import type { SourceRef } from '../../kernel/kernel.ts';
import type { TokenizerPlan } from './build.ts';

/** Where a token's default row comes from; `input` indexes the tensor's inputs. */
export type DefaultRow =
  | { readonly kind: 'zero' }
  | { readonly kind: 'row'; readonly input: number; readonly row: number }
  /** The mean of the rows of the models that have the token (mergekit: `embed += …; embed /= count`). */
  | { readonly kind: 'mean'; readonly rows: readonly (readonly [number, number])[] };

export interface EmbeddingPermutation {
  /** Tokens in the output vocabulary; rows from here to `rows` are padding. */
  readonly vocabRows: number;
  readonly rows: number;
  /** Per input, per output token: the input's own row (≥ 0), or −1 − k for defaults[k]. */
  readonly rowOf: readonly Int32Array[];
  readonly defaults: readonly DefaultRow[];
  /** A digest of the inputs, the permutation and the rows: equal digests over the same files, equal values. */
  readonly digest: string;
}

/** An input of an embedding tensor as the planner has it: source, stored shape and file. */
export interface EmbeddingInput {
  readonly ref: { readonly model: string; readonly tensor: string };
  readonly storedShape: readonly number[];
  readonly file: string;
}

/**
 * Plans the permutation of one embedding tensor, for its distinct inputs in order (the planned tensor's
 * `inputs`); refuses widths that differ ("Embedding sizes must match") and configured sources mergekit fails on.
 */
export function planEmbeddingPermutation(
  tok: TokenizerPlan,
  tensorInputs: readonly EmbeddingInput[],
  recipeFile: string,
): EmbeddingPermutation {
  const distinct = [...new Map(tensorInputs.map((t) => [`${t.ref.model}\u0000${t.ref.tensor}`, t])).values()];
  const width = distinct[0]!.storedShape[1];
  for (const t of distinct) {
    if (t.storedShape[1] !== width)
      throw new EvomergeError(
        'merge.shape_mismatch',
        `has ${t.storedShape[1]} columns but ${distinct[0]!.file} has ${width} (embedding widths must match)`,
        { file: t.file, field: `tensor "${t.ref.tensor}"` },
      );
  }
  const inputs = distinct.map((t) => ({
    model: t.ref.model,
    rows: t.storedShape[0]!,
    tensor: t.ref.tensor,
    file: t.file,
  }));
  const perms = inputs.map((inp) => tok.perms.get(inp.model)!);
  inputs.forEach((inp, i) => {
    const p = perms[i]!;
    for (let id = 0; id < p.length; id++) {
      if (p[id]! >= inp.rows)
        throw new EvomergeError(
          'merge.shape_mismatch',
          `has ${inp.rows} rows but the tokenizer gives ${JSON.stringify(tok.vocab[id])} id ${p[id]}`,
          { file: inp.file, field: `tensor "${inp.tensor}"` },
        );
    }
  });
  const fail = (token: string, what: string): never => {
    throw new EvomergeError('merge.tokenizer', what, { file: recipeFile, field: `tokenizer.tokens.${token}.source` });
  };
  const inputOf = (model: string, token: string, tensor: string): number => {
    const i = inputs.findIndex((inp) => inp.model === model);
    if (i < 0) fail(token, `${model} is not among the models of tensor "${tensor}"`);
    return i;
  };
  const baseIndex = tok.baseModel !== undefined ? inputs.findIndex((inp) => inp.model === tok.baseModel) : -1;
  const defaults: DefaultRow[] = [];
  const defaultIndex = new Map<number, number>();

  // compute_default_embedding for a configured token; assign_embedding_sources for the others.
  const defaultFor = (id: number): number => {
    const known = defaultIndex.get(id);
    if (known !== undefined) return known;
    const token = tok.vocab[id]!;
    const cfg = tok.tokens.get(token);
    const tensor = inputs[0]!.tensor;
    let d: DefaultRow;
    if (cfg !== undefined) {
      const s = cfg.source;
      if (s.kind === 'zero') d = { kind: 'zero' };
      else if (s.kind === 'model') {
        const i = inputOf(s.model, token, tensor);
        if (perms[i]![id]! < 0) fail(token, `${JSON.stringify(token)} is not in the vocabulary of ${s.model}`);
        d = { kind: 'row', input: i, row: perms[i]![id]! };
      } else {
        const i = inputOf(s.model, token, tensor);
        let row = s.tokenId;
        if (s.token !== undefined) {
          row = tok.vocabs.get(s.model)!.vocab.get(s.token);
          if (row === undefined) fail(token, `${JSON.stringify(s.token)} is not in the vocabulary of ${s.model}`);
        }
        if (row! >= inputs[i]!.rows)
          fail(token, `token id ${row} is past the ${inputs[i]!.rows} rows of "${inputs[i]!.tensor}" in ${s.model}`);
        d = { kind: 'row', input: i, row: row! };
      }
    } else {
      const present = perms.flatMap((p, i) => (p[id]! >= 0 ? [i] : []));
      if (present.length === 1) d = { kind: 'row', input: present[0]!, row: perms[present[0]!]![id]! };
      else if (present.length === 0) d = { kind: 'zero' };
      else if (baseIndex >= 0 && perms[baseIndex]![id]! >= 0)
        d = { kind: 'row', input: baseIndex, row: perms[baseIndex]![id]! };
      else d = { kind: 'mean', rows: present.map((i) => [i, perms[i]![id]!] as const) };
    }
    defaults.push(d);
    defaultIndex.set(id, defaults.length - 1);
    return defaults.length - 1;
  };
  // mergekit computes (and checks) the default of every configured token, used or not.
  for (const token of tok.tokens.keys()) defaultFor(tok.vocab.indexOf(token));

  const rowOf = perms.map((p) => {
    const out = new Int32Array(p.length);
    for (let id = 0; id < p.length; id++) {
      const force = tok.tokens.get(tok.vocab[id]!)?.force === true;
      out[id] = p[id]! >= 0 && !force ? p[id]! : -1 - defaultFor(id);
    }
    return out;
  });
  // Everything the permuted values depend on besides the files: the inputs (the defaults read their rows too).
  const h = createHash('sha256');
  h.update(JSON.stringify({ inputs: inputs.map((i) => [i.model, i.tensor]), rows: tok.rows, defaults }));
  for (const r of rowOf) h.update(new Uint8Array(r.buffer, r.byteOffset, r.byteLength));
  return { vocabRows: tok.vocab.length, rows: tok.rows, rowOf, defaults, digest: h.digest('hex').slice(0, 16) };
}

/**
 * The ref a job names a permuted input by: the stored tensor's name plus the permutation's digest, as a kernel
 * that keeps sources across merges by ref (the GPU's resident cache) must never take one permutation's rows for
 * another's of the same size.
 */
export function permutedRef(perm: EmbeddingPermutation, ref: SourceRef): SourceRef {
  return { model: ref.model, tensor: `${ref.tensor} (permuted onto the output vocabulary, ${perm.digest})` };
}

/**
 * The default rows, computed from the inputs as read (after the recipe dtype's rounding): a mean accumulates
 * in float32 and, under a narrower recipe dtype, is rounded to it after each step as torch does in that dtype.
 */
export function computeDefaultRows(
  perm: EmbeddingPermutation,
  raw: readonly Float32Array[],
  hidden: number,
  loadDtype: DType | undefined,
): Float32Array {
  const out = new Float32Array(perm.defaults.length * hidden);
  const round =
    loadDtype !== undefined && loadDtype !== 'F32' ? (a: Float32Array) => roundToDType(loadDtype, a) : undefined;
  perm.defaults.forEach((d, k) => {
    const dst = out.subarray(k * hidden, (k + 1) * hidden);
    if (d.kind === 'row') dst.set(raw[d.input]!.subarray(d.row * hidden, (d.row + 1) * hidden));
    else if (d.kind === 'mean') {
      for (const [i, row] of d.rows) {
        const src = raw[i]!.subarray(row * hidden, (row + 1) * hidden);
        for (let j = 0; j < hidden; j++) dst[j] = dst[j]! + src[j]!;
        round?.(dst);
      }
      for (let j = 0; j < hidden; j++) dst[j] = dst[j]! / d.rows.length;
      round?.(dst);
    }
  });
  return out;
}

/**
 * Input i's permuted tensor into `out` (rows × hidden) from its stored rows `src` (which `out` must not
 * overlap); padding rows get the mean of the vocabulary rows (mergekit: torch.mean over dim 0).
 */
export function permuteInto(
  perm: EmbeddingPermutation,
  i: number,
  src: Float32Array,
  defaults: Float32Array,
  hidden: number,
  out: Float32Array,
  loadDtype: DType | undefined,
): void {
  const rowOf = perm.rowOf[i]!;
  for (let id = 0; id < perm.vocabRows; id++) {
    const r = rowOf[id]!;
    const from =
      r >= 0 ? src.subarray(r * hidden, (r + 1) * hidden) : defaults.subarray((-1 - r) * hidden, -r * hidden);
    out.set(from, id * hidden);
  }
  if (perm.rows === perm.vocabRows) return;
  const mean = new Float64Array(hidden);
  for (let id = 0; id < perm.vocabRows; id++)
    for (let j = 0; j < hidden; j++) mean[j] = mean[j]! + out[id * hidden + j]!;
  const row = Float32Array.from(mean, (s) => s / perm.vocabRows);
  if (loadDtype !== undefined && loadDtype !== 'F32') roundToDType(loadDtype, row);
  for (let id = perm.vocabRows; id < perm.rows; id++) out.set(row, id * hidden);
}
