// `npm run bench -- <name> [options]`: dispatches to one benchmark module. Add an entry per benchmark; each
// module exports `main(args)` and prints its own table. Benchmarks time things; tests never do.

const benches: Record<string, () => Promise<{ main(args: string[]): Promise<void> }>> = {
  merge: () => import('./merge.ts'),
  'merge-memory': () => import('./merge-memory.ts'),
  'merge-cli': () => import('./merge-cli.ts'),
  'merge-loop': () => import('./merge-loop.ts'),
  search: () => import('./search.ts'),
  'search-selection': () => import('./search-selection.ts'),
  eval: () => import('./eval.ts'),
  candidate: () => import('./candidate.ts'),
  queue: () => import('./queue.ts'),
  report: () => import('./report.ts'),
  optimizers: () => import('./optimizers.ts'),
  'eval-vs-torch': () => import('./eval-vs-torch.ts'),
};

const [name, ...args] = process.argv.slice(2);
const load = name === undefined ? undefined : benches[name];
if (load === undefined) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [options]`);
  process.exit(2);
}
await (await load()).main(args);
