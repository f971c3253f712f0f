// A start racing for a database's writer lock (lock.test.ts): waits for `<go>`, tries the lock once, prints
// `won` or `refused`, and a winner holds the lock until `<done>` exists.
import fs from 'node:fs';
import { acquireDatabaseLock } from '../../../src/store/lock.ts';

const [db, go, done] = process.argv.slice(2);
const nap = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
while (!fs.existsSync(go)) nap(2);
try {
  const lock = acquireDatabaseLock(db);
  process.stdout.write('won\n');
  while (!fs.existsSync(done)) nap(10);
  lock.release();
} catch (err) {
  process.stdout.write(`refused ${(err as Error).message}\n`);
}
