// A campaign's record in its database: whether a database is this campaign's (checked before the loop opens it
// for writing), and a new campaign's row, written with its inputs' fingerprints and the versions that ran it.
import { readFileSync } from 'node:fs';
import { EvomergeError } from '../../errors.ts';
import { openStore, type Store } from '../../store/db.ts';
import type { CampaignSetup } from './campaign-setup.ts';
import type { campaignInputs } from './fingerprint.ts';

/** A database that exists must hold this campaign (same config hash) and nothing else; checked read-only. */
export function checkDatabaseIsOurs(dbFile: string, setup: CampaignSetup): void {
  let store: Store;
  try {
    store = openStore(dbFile, { readonly: true });
  } catch (err) {
    if (err instanceof EvomergeError && err.code === 'store.not_found') return;
    throw err;
  }
  try {
    const all = store.listCampaigns();
    const other = all.find((c) => c.configHash !== setup.configHash);
    if (other) {
      const why =
        other.name === setup.space.name
          ? 'the search space has changed since it was started'
          : `it holds campaign "${other.name}"`;
      throw new EvomergeError(
        'search.other_campaign',
        `this database belongs to another campaign (${why}; config hash ${other.configHash.slice(0, 12)} ≠ ` +
          `${setup.configHash.slice(0, 12)}); use another --db`,
        { file: dbFile },
      );
    }
  } finally {
    store.close();
  }
}

/** A new campaign and the fingerprints of its inputs, recorded together. */
export function createCampaign(
  store: Store,
  setup: CampaignSetup,
  device: string,
  inputs: ReturnType<typeof campaignInputs>,
) {
  return store.transaction(() => {
    const c = store.createCampaign({
      name: setup.space.name,
      configJson: setup.configJson,
      configHash: setup.configHash,
      seed: setup.seed,
      versionsJson: JSON.stringify(versions()),
      device,
    });
    store.saveInputFingerprints(c.campaignId, inputs);
    return c;
  });
}

function versions(): Record<string, string> {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
    dependencies: Record<string, string>;
  };
  return {
    evomerge: pkg.version,
    'onnxruntime-node': pkg.dependencies['onnxruntime-node'] ?? '?',
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
  };
}
