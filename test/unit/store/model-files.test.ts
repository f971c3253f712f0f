// The model_files table: a campaign's input model files (size, header hash) recorded once and listed back;
// a database made before the table existed opens read-only as it is (listing nothing) and gains the table
// when opened for writing.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/store/db.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-model-files-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const campaign = { name: 'c', configJson: '{}', configHash: 'h', seed: 1, versionsJson: '{}', device: 'cpu' };
const files = [
  { modelDir: '/m/base', file: 'model.safetensors', size: 10, headerSha256: 'a'.repeat(64) },
  { modelDir: '/m/expert', file: 'model-00001-of-00002.safetensors', size: 20, headerSha256: 'b'.repeat(64) },
];

describe('model files of a campaign', () => {
  it('are recorded once, listed back in order, and refused a second time', () => {
    const file = path.join(tmp, 'a.sqlite');
    const store = openStore(file);
    try {
      const { campaignId } = store.createCampaign(campaign);
      expect(store.listModelFiles(campaignId)).toEqual([]);
      store.recordModelFiles(campaignId, [files[1]!, files[0]!]);
      expect(store.listModelFiles(campaignId)).toEqual(files);
      expect(() => store.recordModelFiles(campaignId, [files[0]!])).toThrow(/UNIQUE|PRIMARY/);
      expect(store.listModelFiles(campaignId)).toEqual(files);
    } finally {
      store.close();
    }
  });

  it('an older database without the table reads as none, and gains it when opened for writing', () => {
    const file = path.join(tmp, 'old.sqlite');
    openStore(file).close();
    const raw = new Database(file);
    raw.exec('DROP TABLE model_files');
    raw
      .prepare(
        "INSERT INTO campaigns (name, config_json, config_hash, seed, versions_json, device, created_at) VALUES ('c', " +
          "'{}', 'h', 1, '{}', 'cpu', 'now')",
      )
      .run();
    raw.close();
    const ro = openStore(file, { readonly: true });
    expect(ro.listModelFiles(1)).toEqual([]);
    ro.close();
    const rw = openStore(file);
    try {
      rw.recordModelFiles(1, files);
      expect(rw.listModelFiles(1)).toEqual(files);
    } finally {
      rw.close();
    }
  });
});
