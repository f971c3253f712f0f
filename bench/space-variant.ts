// A search space read for a bench that writes variants of it elsewhere (under its --dir): the paths inside a space
// are relative to its own folder, so they are made absolute before a variant is written.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

/** The space's YAML with base_model, suite, graph and every model path made absolute. */
export function absoluteSpace(spaceFile: string): Record<string, unknown> {
  if (!existsSync(spaceFile)) throw new Error(`${spaceFile}: no such search space`);
  const doc = YAML.parse(readFileSync(spaceFile, 'utf8')) as Record<string, unknown>;
  const abs = (p: unknown) => (typeof p === 'string' ? path.resolve(path.dirname(spaceFile), p) : p);
  doc.base_model = abs(doc.base_model);
  doc.suite = abs(doc.suite);
  if (doc.graph !== undefined) doc.graph = abs(doc.graph);
  doc.models = (doc.models as unknown[]).map((m) =>
    typeof m === 'string' ? abs(m) : { ...(m as object), model: abs((m as { model: string }).model) },
  );
  return doc;
}
