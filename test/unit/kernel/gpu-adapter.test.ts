// Adapter classification and description (src/kernel/gpu/device.ts): which adapters `--device auto` may take,
// and the `gpu: …` text recorded with campaigns. Pure: adapter infos are plain objects, no device is opened.

import { describe, expect, it } from 'vitest';
import { describeAdapter, dispatchGrid, isSoftwareAdapter } from '../../../src/kernel/gpu/device.ts';

function info(fields: Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean }): GPUAdapterInfo {
  return {
    vendor: '',
    architecture: '',
    device: '',
    description: '',
    subgroupMinSize: 0,
    subgroupMaxSize: 0,
    isFallbackAdapter: false,
    ...fields,
  } as GPUAdapterInfo;
}

const backend = process.platform === 'darwin' ? 'metal' : process.platform === 'win32' ? 'd3d12' : 'vulkan';

describe('GPU adapter classification', () => {
  it('treats Mesa llvmpipe/lavapipe, SwiftShader and fallback adapters as software', () => {
    expect(
      isSoftwareAdapter(
        info({
          vendor: 'mesa',
          architecture: 'software',
          device: 'llvmpipe-llvm-15',
          description: 'llvmpipe: Mesa 25.0.7',
        }),
      ),
    ).toBe(true);
    expect(isSoftwareAdapter(info({ vendor: 'mesa', description: 'lavapipe' }))).toBe(true);
    expect(
      isSoftwareAdapter(info({ vendor: 'google', device: 'swiftshader', description: 'SwiftShader Device (Subzero)' })),
    ).toBe(true);
    expect(isSoftwareAdapter(info({ vendor: 'microsoft', description: 'Microsoft Basic Render Driver' }))).toBe(true);
    expect(isSoftwareAdapter(info({ vendor: 'acme', description: 'Acme GPU', isFallbackAdapter: true }))).toBe(true);
  });

  it('treats NVIDIA, AMD, Intel and Apple adapters as real GPUs', () => {
    expect(
      isSoftwareAdapter(info({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' })),
    ).toBe(false);
    expect(
      isSoftwareAdapter(info({ vendor: 'amd', architecture: 'rdna-3', description: 'AMD Radeon RX 7900 XTX' })),
    ).toBe(false);
    expect(
      isSoftwareAdapter(info({ vendor: 'intel', architecture: 'gen-12lp', description: 'Intel(R) UHD Graphics 770' })),
    ).toBe(false);
    expect(isSoftwareAdapter(info({ vendor: 'apple', architecture: 'metal-3', description: 'Apple M2 Max' }))).toBe(
      false,
    );
  });

  it('describes an adapter by its description, or vendor and device when that is empty', () => {
    expect(describeAdapter(info({ vendor: 'nvidia', description: 'NVIDIA H100 80GB HBM3' }))).toEqual({
      text: `NVIDIA H100 80GB HBM3 (${backend})`,
      software: false,
    });
    expect(describeAdapter(info({ vendor: 'amd', device: 'navi31' })).text).toBe(`amd navi31 (${backend})`);
    expect(
      describeAdapter(info({ vendor: 'mesa', architecture: 'software', description: 'llvmpipe: Mesa 25' })),
    ).toEqual({ text: `llvmpipe: Mesa 25 (${backend}, software)`, software: true });
    expect(describeAdapter(info({})).text).toBe(`unnamed adapter (${backend})`);
  });
});

describe('dispatch grid', () => {
  it('splits workgroups over x and y within the per-dimension limit and covers them all', () => {
    expect(dispatchGrid(0, 65535)).toEqual([0, 0]);
    expect(dispatchGrid(10, 65535)).toEqual([10, 1]);
    expect(dispatchGrid(65535, 65535)).toEqual([65535, 1]);
    const [x, y] = dispatchGrid(229_376 * 2 + 1, 65535);
    expect(x).toBeLessThanOrEqual(65535);
    expect(x * y).toBeGreaterThanOrEqual(229_376 * 2 + 1);
    expect(x * (y - 1)).toBeLessThan(229_376 * 2 + 1);
  });
});
