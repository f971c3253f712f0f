// A small helper to emit ONNX graphs node by node: fresh value names, constants, attributes and value infos.
// Only what the decoder builder needs; the encoding itself is onnx-proto.ts's. Names read as paths of the
// module that made them (`layers.3/attn/q_proj/MatMul`, scope), so that ONNX Runtime's profiles and errors,
// which name nodes, say where in the model a node sits.
import { encodeFromF32 } from '../checkpoint/dtype.ts';
import {
  OnnxDataType,
  type AttributeMessage,
  type NodeMessage,
  type TensorMessage,
  type ValueInfoMessage,
} from './onnx-proto.ts';

export const MS_DOMAIN = 'com.microsoft';

export class OnnxWriter {
  readonly nodes: NodeMessage[] = [];
  readonly initializers: TensorMessage[] = [];
  private path = '';
  private readonly taken = new Set<string>();

  /** Runs `build` with the names it makes under `name`, inside the current scope (`layers.3` then `attn`). */
  scope<T>(name: string, build: () => T): T {
    return this.at(this.path ? `${this.path}/${name}` : name, build);
  }

  /** Runs `build` with the names it makes under `path` from the top: a part shared by every layer, built
   *  where it is first needed, still reads as itself (`rope_tables/Cos`). */
  at<T>(path: string, build: () => T): T {
    const outer = this.path;
    this.path = path;
    try {
      return build();
    } finally {
      this.path = outer;
    }
  }

  /** A name not used yet: `stem` under the current scope, numbered from _1 when the scope has one already. */
  fresh(stem: string): string {
    const base = this.path ? `${this.path}/${stem}` : stem;
    let name = base;
    for (let k = 1; this.taken.has(name); k++) name = `${base}_${k}`;
    this.taken.add(name);
    return name;
  }

  /** Appends a node with one output (named `out`, or the node's own fresh name) and returns that output's name. */
  node(op: string, inputs: string[], attrs: AttributeMessage[] = [], out?: string, domain?: string): string {
    const name = this.fresh(op);
    const o = out ?? name;
    this.nodes.push({
      opType: op,
      input: inputs,
      output: [o],
      name,
      attribute: attrs,
      ...(domain ? { domain } : {}),
    });
    return o;
  }

  /** Appends a node with several outputs (empty names for outputs not wanted). */
  nodeN(op: string, inputs: string[], outputs: string[], attrs: AttributeMessage[] = [], domain?: string): void {
    this.nodes.push({
      opType: op,
      input: inputs,
      output: outputs,
      name: this.fresh(op),
      attribute: attrs,
      ...(domain ? { domain } : {}),
    });
  }

  constF(values: ArrayLike<number>, dims: number[]): string {
    const name = this.fresh('constF');
    this.initializers.push({
      name,
      dataType: OnnxDataType.FLOAT,
      dims,
      rawData: new Uint8Array(Float32Array.from(values).buffer),
    });
    return name;
  }

  /** A float16 constant (values rounded to nearest even). */
  constF16(values: ArrayLike<number>, dims: number[]): string {
    const name = this.fresh('constF16');
    this.initializers.push({
      name,
      dataType: OnnxDataType.FLOAT16,
      dims,
      rawData: encodeFromF32('F16', Float32Array.from(values)),
    });
    return name;
  }

  constI(values: number[], dims: number[]): string {
    const name = this.fresh('constI');
    this.initializers.push({
      name,
      dataType: OnnxDataType.INT64,
      dims,
      rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer),
    });
    return name;
  }

  constI32(values: number[], dims: number[]): string {
    const name = this.fresh('constI32');
    this.initializers.push({
      name,
      dataType: OnnxDataType.INT32,
      dims,
      rawData: new Uint8Array(Int32Array.from(values).buffer),
    });
    return name;
  }
}

export const attrInt = (name: string, i: number): AttributeMessage => ({ name, type: 2, i });
export const attrInts = (name: string, ints: number[]): AttributeMessage => ({ name, type: 7, ints });
export const attrFloat = (name: string, f: number): AttributeMessage => ({ name, type: 1, f });

export function valueInfo(name: string, elemType: number, dims: (number | string)[]): ValueInfoMessage {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
