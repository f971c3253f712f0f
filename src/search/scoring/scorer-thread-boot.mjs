// Entry of a scoring thread: a worker thread does not inherit the main thread's tsx loader, so it registers
// its own before loading the TypeScript body (scorer-thread.ts).
import { register } from 'tsx/esm/api';

register();
await import('./scorer-thread.ts');
