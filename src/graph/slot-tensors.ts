// The weights of a data-flow path: several checkpoints seen as one tensor source, model 0 under its own
// tensor names and model k ≥ 1 under sourceTensorName(k, name), the names the slot graph's initializers carry.
// Nothing is copied: each read goes to the checkpoint that holds the tensor, so a layer used by several slots
// is read once per candidate and bound once.
import { EvomergeError } from '../errors.ts';
import type { Tensor, TensorInfo, TensorSource } from '../checkpoint/tensor-source.ts';
import { sourceTensorName } from './decoder-config.ts';

export class SlotTensors implements TensorSource {
  readonly location: string;

  constructor(private readonly sources: readonly TensorSource[]) {
    this.location = sources.map((s) => s.location).join(' + ');
  }

  private resolve(name: string): { source: TensorSource; name: string } | undefined {
    const m = /^source(\d+)\/(.*)$/.exec(name);
    if (!m) return { source: this.sources[0]!, name };
    const k = Number(m[1]);
    const source = k >= 1 ? this.sources[k] : undefined;
    return source && sourceTensorName(k, m[2]!) === name ? { source, name: m[2]! } : undefined;
  }

  private need(name: string): { source: TensorSource; name: string } {
    const r = this.resolve(name);
    if (!r || !r.source.hasTensor(r.name))
      throw new EvomergeError('checkpoint.missing_tensor', 'no such tensor in the models of the path', {
        file: this.location,
        field: `tensor "${name}"`,
      });
    return r;
  }

  tensorNames(): string[] {
    return this.sources.flatMap((s, k) => s.tensorNames().map((n) => sourceTensorName(k, n)));
  }

  hasTensor(name: string): boolean {
    const r = this.resolve(name);
    return r !== undefined && r.source.hasTensor(r.name);
  }

  tensorInfo(name: string): TensorInfo {
    const r = this.need(name);
    return { ...r.source.tensorInfo(r.name), name };
  }

  readTensor(name: string): Tensor {
    const r = this.need(name);
    return r.source.readTensor(r.name);
  }

  readTensorInto(name: string, out: Float32Array): void {
    const r = this.need(name);
    if (r.source.readTensorInto) r.source.readTensorInto(r.name, out);
    else out.set(r.source.readTensor(r.name).data);
  }
}
