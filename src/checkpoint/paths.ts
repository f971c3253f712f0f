// Where an output may go: never onto, into or around an input, compared by real paths (symlinks resolved, and
// the same file or folder reached by another name caught by its device and inode), and an existing non-empty
// output folder replaced only with --force. One policy for every command that writes a checkpoint folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EvomergeError } from '../errors.ts';

/** A file or folder a command reads; `role` names it in the refusal (e.g. `base_model`, `eval file`). */
export interface InputPath {
  readonly path: string;
  readonly role: string;
}

/**
 * The real path of `p`, which may not exist yet: its deepest existing ancestor is resolved (symlinks
 * followed) and the rest appended, so `out/new` under a symlinked `out` compares as the target.
 */
export function realPathOf(p: string): string {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return abs;
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

/** Whether `inner` is `outer` or lies inside it (both real, absolute paths). */
export function isWithin(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function sameInode(a: string, b: string): boolean {
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/**
 * Refuses an output folder that is an input, lies inside one, or contains one — whatever names or links
 * lead there. `--force` never lifts this: replacing the output would destroy what the command reads.
 */
export function checkOutputAvoidsInputs(
  outDir: string,
  inputs: readonly InputPath[],
  field = '-o',
  what: 'folder' | 'file' = 'folder',
): void {
  const out = realPathOf(outDir);
  for (const input of inputs) {
    const inp = realPathOf(input.path);
    let how: string | undefined;
    if (out === inp || sameInode(out, inp)) how = 'is';
    else if (isWithin(out, inp)) how = 'lies inside';
    else if (isWithin(inp, out)) how = 'contains';
    else {
      // a folder reached through a bind mount or a hard-linked file: walk up the output's existing ancestors
      for (let a = path.dirname(out); a !== path.dirname(a); a = path.dirname(a)) {
        if (sameInode(a, inp)) {
          how = 'lies inside';
          break;
        }
      }
    }
    if (how) {
      throw new EvomergeError(
        'checkpoint.out_is_input',
        `the output ${what} ${how} an input of this command (${input.role} ${input.path}); choose another output ` +
          `${what} (--force never allows this)`,
        { file: outDir, field },
      );
    }
  }
}

/**
 * An existing output may be replaced only with `force`, and only when it is a folder holding nothing but
 * files evomerge itself writes there (`ours`): a folder with anything else is someone's data.
 */
export function checkOutputReplaceable(
  outDir: string,
  options: { readonly force: boolean; readonly ours: (name: string) => boolean },
): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(outDir);
  } catch {
    return;
  }
  const place = { file: outDir, field: '-o' };
  if (st.isSymbolicLink())
    throw new EvomergeError('checkpoint.out_exists', 'output path is a symbolic link; refusing to replace it', place);
  if (!st.isDirectory())
    throw new EvomergeError(
      'checkpoint.out_exists',
      'output path exists and is not a folder; refusing to replace it',
      place,
    );
  const names = fs.readdirSync(outDir);
  if (names.length === 0) return;
  const foreign = names.filter((n) => !options.ours(n));
  if (foreign.length > 0) {
    throw new EvomergeError(
      'checkpoint.out_exists',
      `output folder exists and holds files that are not a checkpoint (${foreign.slice(0, 3).join(', ')}` +
        `${foreign.length > 3 ? ', …' : ''}); refusing to replace it, even with --force`,
      place,
    );
  }
  if (!options.force) {
    throw new EvomergeError(
      'checkpoint.out_exists',
      `output folder exists and is not empty (${names.length} file(s)); --force replaces it`,
      place,
    );
  }
}

/**
 * Where an output FILE may go (a report page; the database of a new campaign): never onto or into an input
 * (checkOutputAvoidsInputs, --force never lifts it); its folder must be a folder; an existing file is replaced
 * only when `ours` says evomerge wrote it there (e.g. an earlier report page) or with `force`; an existing
 * folder or link is never replaced.
 */
export function checkOutputFile(
  outFile: string,
  options: {
    readonly inputs: readonly InputPath[];
    readonly force: boolean;
    readonly ours: (file: string) => boolean;
    readonly field: string;
    /** What the file is, in messages (e.g. `HTML report page`). */
    readonly what: string;
  },
): void {
  const place = { file: outFile, field: options.field };
  const parent = path.dirname(path.resolve(outFile));
  let parentStat: fs.Stats | undefined;
  try {
    parentStat = fs.statSync(parent);
  } catch {
    // a missing folder: the write reports it
  }
  if (parentStat && !parentStat.isDirectory())
    throw new EvomergeError(
      'checkpoint.out_parent',
      `cannot write the ${options.what}: ${path.dirname(outFile)} is a file, not a folder`,
      place,
    );
  checkOutputAvoidsInputs(outFile, options.inputs, options.field, 'file');
  let st: fs.Stats;
  try {
    st = fs.lstatSync(outFile);
  } catch {
    return; // new
  }
  if (st.isDirectory())
    throw new EvomergeError(
      'checkpoint.out_exists',
      `is a folder; refusing to replace it with the ${options.what}`,
      place,
    );
  if (st.isFile() && options.ours(outFile)) return;
  if (!options.force)
    throw new EvomergeError(
      'checkpoint.out_exists',
      `exists and is not an evomerge ${options.what}; --force replaces it`,
      place,
    );
}

/**
 * A file a model folder provides must be a regular file whose real path lies inside the folder — or, for a
 * Hugging Face cache snapshot (`…/snapshots/<rev>/`), inside the cache's `blobs/` — so that a link in a
 * downloaded or hand-made folder can never make a merge read, or copy into a published checkpoint, a file
 * from elsewhere (a key, a password file). Checked before the file is opened: a FIFO would block the open.
 */
export function checkModelFile(dir: string, file: string, field?: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return; // absence is for the caller to report in its own words
  }
  const place = { file, ...(field !== undefined ? { field } : {}) };
  if (!st.isFile()) {
    throw new EvomergeError(
      'checkpoint.not_a_file',
      `not a regular file (${st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a folder' : 'a special file'}); refusing to read it`,
      place,
    );
  }
  const real = fs.realpathSync(file);
  const folder = fs.realpathSync(dir);
  if (isWithin(real, folder)) return;
  const blobs = path.join(path.dirname(path.dirname(folder)), 'blobs');
  if (path.basename(path.dirname(folder)) === 'snapshots' && isWithin(real, blobs)) return;
  throw new EvomergeError(
    'checkpoint.link_outside',
    `is a link to ${real}, outside the model folder ${folder}; refusing to read or copy it`,
    place,
  );
}
