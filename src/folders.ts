// Makes a folder and its missing parents one level at a time. Node's recursive mkdir spins forever on a path
// whose existing parent refuses new entries with ENOENT (under /proc, say); here that is one error naming the path.
// Open to every module (test/unit/architecture.test.ts): the store makes database folders with it, the checkpoint
// output folders.
import fs from 'node:fs';
import path from 'node:path';

/** Creates `dir` and any missing parents; throws (naming the folder) when one cannot be made or is not a folder. */
export function makeFolder(dir: string): void {
  const target = path.resolve(dir);
  const missing: string[] = [];
  let at = target;
  for (;;) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (stat) {
      if (!stat.isDirectory()) throw new Error(`${at} is not a folder`);
      break;
    }
    const parent = path.dirname(at);
    if (parent === at) throw new Error(`${at} does not exist`);
    missing.push(at);
    at = parent;
  }
  for (const folder of missing.reverse()) {
    try {
      fs.mkdirSync(folder);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && fs.statSync(folder).isDirectory()) continue; // made meanwhile by another start
      throw new Error(`cannot make ${folder}: ${code ?? (err as Error).message}`);
    }
  }
}
