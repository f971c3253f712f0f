// An ONNX model decoded once, with no runtime attached: its inputs, outputs and initializers (inline or in an
// external data file beside it), and its bytes re-encoded with a candidate's weights built in, pointed to an
// external data file, or fed as inputs. What eval/onnx-session.ts hands to ONNX Runtime; data-flow exports write it.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { EvomergeError, invariant } from '../errors.ts';
import { checkModelFile } from '../checkpoint/paths.ts';
import { toFloat16Saturated } from './float16-weights.ts';
import {
  DATA_LOCATION_EXTERNAL,
  OnnxDataType,
  decodeModel,
  encodeModel,
  int64ToNumber,
  type ModelMessage,
  type TensorMessage,
  type ValueInfoMessage,
} from './onnx-proto.ts';

/** One initializer of the graph as stored (name, shape, ONNX data type). */
export interface InitializerInfo {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dataType: number;
}

/** An ONNX graph decoded once; hands out initializer values (inline or external) and weight-fed model bytes. */
export class OnnxGraph {
  readonly initializers: readonly InitializerInfo[];
  private readonly byName = new Map<string, TensorMessage>();

  private constructor(
    readonly path: string,
    private readonly model: ModelMessage,
  ) {
    const graph = model.graph;
    if (!graph) throw new EvomergeError('eval.bad_graph', 'the model has no graph', { file: path, field: 'graph' });
    const infos: InitializerInfo[] = [];
    for (const t of graph.initializer ?? []) {
      const name = t.name ?? '';
      this.byName.set(name, t);
      infos.push({ name, dims: (t.dims ?? []).map(int64ToNumber), dataType: t.dataType ?? 0 });
    }
    this.initializers = infos;
  }

  /** A graph built in memory (graph: auto); `label` names it in messages (the config.json it came from). */
  static fromModel(model: ModelMessage, label: string): OnnxGraph {
    return new OnnxGraph(label, model);
  }

  static load(path: string): OnnxGraph {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      throw new EvomergeError(
        'eval.graph_not_found',
        `cannot read the ONNX graph (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        { file: path },
      );
    }
    let model: ModelMessage;
    try {
      model = decodeModel(bytes);
    } catch (err) {
      throw new EvomergeError('eval.bad_graph', `not an ONNX model: ${(err as Error).message}`, { file: path });
    }
    return new OnnxGraph(path, model);
  }

  /** Graph inputs that are not initializers (what a caller must feed besides the weights), with their dims
   * (a number, or the symbolic name of a dynamic axis). */
  dataInputs(): { name: string; elemType: number; dims: (number | string)[] }[] {
    const inits = new Set(this.byName.keys());
    return (this.model.graph!.input ?? [])
      .filter((v) => !inits.has(v.name ?? ''))
      .map((v) => ({
        name: v.name ?? '',
        elemType: v.type?.tensorType?.elemType ?? 0,
        dims: (v.type?.tensorType?.shape?.dim ?? []).map((d) =>
          d.dimValue !== undefined && d.dimValue !== null ? int64ToNumber(d.dimValue) : (d.dimParam ?? '?'),
        ),
      }));
  }

  /** Whether a node of the graph's top level runs this operator (any domain). */
  hasOperator(opType: string): boolean {
    return (this.model.graph!.node ?? []).some((n) => n.opType === opType);
  }

  /** Names of the float16 initializers (a float16 graph's weights). */
  float16Initializers(): Set<string> {
    return new Set(this.initializers.filter((i) => i.dataType === OnnxDataType.FLOAT16).map((i) => i.name));
  }

  outputNames(): string[] {
    return (this.model.graph!.output ?? []).map((v) => v.name ?? '');
  }

  /** The value of a float32 initializer, read from the model or from its external data file. */
  initializerData(name: string): Float32Array {
    const t = this.byName.get(name);
    invariant(t, `initializer ${name} looked up but absent`);
    const field = `initializer "${name}"`;
    if (t.dataType !== OnnxDataType.FLOAT) {
      throw new EvomergeError(
        'eval.unsupported_initializer',
        `data type ${t.dataType} (only float32 weights can be bound)`,
        { file: this.path, field },
      );
    }
    const n = numelOf(t);
    const raw = this.rawBytes(t);
    if (raw) {
      if (raw.byteLength !== n * 4) {
        throw new EvomergeError('eval.bad_graph', `holds ${raw.byteLength} bytes, its shape needs ${n * 4}`, {
          file: this.path,
          field,
        });
      }
      // Copy into an aligned buffer: raw_data is a view at an arbitrary offset of the file.
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(raw);
      return out;
    }
    const data = t.floatData ?? [];
    if (data.length !== n) {
      throw new EvomergeError('eval.bad_graph', `holds ${data.length} floats, its shape needs ${n}`, {
        file: this.path,
        field,
      });
    }
    return Float32Array.from(data);
  }

  /** raw_data, or the bytes of an external-data initializer (location/offset/length relative to the .onnx). */
  private rawBytes(t: TensorMessage): Uint8Array | undefined {
    if (t.dataLocation !== DATA_LOCATION_EXTERNAL) return t.rawData && t.rawData.byteLength > 0 ? t.rawData : undefined;
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const field = `initializer "${t.name}"`;
    const location = kv.get('location');
    if (!location)
      throw new EvomergeError('eval.bad_graph', 'external data without a location', { file: this.path, field });
    if (isAbsolute(location) || location.split(/[\\/]/).includes('..')) {
      throw new EvomergeError('eval.bad_graph', `external data location "${location}" must stay beside the model`, {
        file: this.path,
        field,
      });
    }
    const file = resolve(dirname(this.path), location);
    checkModelFile(dirname(this.path), file, field);
    const offset = Number(kv.get('offset') ?? '0');
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      throw new EvomergeError('eval.bad_graph', `external data file ${location} not found`, { file: this.path, field });
    }
    try {
      const size = fstatSync(fd).size;
      const length = kv.has('length') ? Number(kv.get('length')) : size - offset;
      if (
        !Number.isSafeInteger(offset) ||
        !Number.isSafeInteger(length) ||
        offset < 0 ||
        length < 0 ||
        offset + length > size
      ) {
        throw new EvomergeError(
          'eval.bad_graph',
          `external data [${offset}, +${length}) outside ${location} (${size} bytes)`,
          { file: this.path, field },
        );
      }
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const got = readSync(fd, buf, done, length - done, offset + done);
        if (got === 0) break;
        done += got;
      }
      return buf;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The model bytes with the given initializers' values replaced (float32, row-major, same dims) and every
   * external-data initializer inlined: a self-contained model for a session per candidate (under 2 GB).
   */
  bytesWithWeights(weights: ReadonlyMap<string, Float32Array>): Uint8Array {
    const graph = this.model.graph!;
    const initializer = (graph.initializer ?? []).map((t) => {
      const w = weights.get(t.name ?? '');
      if (w)
        return {
          ...t,
          rawData:
            t.dataType === OnnxDataType.FLOAT16
              ? toFloat16Saturated(w)
              : new Uint8Array(w.buffer, w.byteOffset, w.byteLength),
          floatData: [],
          dataLocation: 0,
          externalData: [],
        };
      if (t.dataLocation === DATA_LOCATION_EXTERNAL)
        return { ...t, rawData: this.rawBytes(t), dataLocation: 0, externalData: [] };
      return t;
    });
    return encodeModel({ ...this.model, graph: { ...graph, initializer } });
  }

  /**
   * The model bytes with the given initializers pointing into an external data file (`location`, beside the
   * model) at the offsets given, and every other external-data initializer inlined.
   */
  bytesWithExternalWeights(
    location: string,
    offsets: ReadonlyMap<string, { offset: number; length: number }>,
  ): Uint8Array {
    const graph = this.model.graph!;
    const initializer = (graph.initializer ?? []).map((t) => {
      const at = offsets.get(t.name ?? '');
      if (at) {
        const externalData = [
          { key: 'location', value: location },
          { key: 'offset', value: String(at.offset) },
          { key: 'length', value: String(at.length) },
        ];
        return { ...t, rawData: new Uint8Array(0), floatData: [], dataLocation: DATA_LOCATION_EXTERNAL, externalData };
      }
      if (t.dataLocation === DATA_LOCATION_EXTERNAL)
        return { ...t, rawData: this.rawBytes(t), dataLocation: 0, externalData: [] };
      return t;
    });
    return encodeModel({ ...this.model, graph: { ...graph, initializer } });
  }

  /**
   * The model bytes with the named initializers removed and declared as float32 graph inputs instead (their
   * values then come with every run). Remaining external-data initializers are inlined so the bytes load
   * from memory; the weights removed are what make a big model big, so what is left stays small.
   */
  weightFedBytes(weightNames: readonly string[]): Uint8Array {
    const graph = this.model.graph!;
    const fed = new Set(weightNames);
    const kept: TensorMessage[] = [];
    for (const t of graph.initializer ?? []) {
      if (fed.has(t.name ?? '')) continue;
      if (t.dataLocation === DATA_LOCATION_EXTERNAL) {
        kept.push({ ...t, rawData: this.rawBytes(t), dataLocation: 0, externalData: [] });
      } else kept.push(t);
    }
    const declared = new Set((graph.input ?? []).map((v) => v.name ?? ''));
    const newInputs: ValueInfoMessage[] = [];
    for (const name of weightNames) {
      if (declared.has(name)) continue; // IR < 4 lists initializers among the inputs already
      const info = this.byName.get(name);
      invariant(info, `weight ${name} is not an initializer`);
      newInputs.push({
        name,
        type: {
          tensorType: { elemType: OnnxDataType.FLOAT, shape: { dim: (info.dims ?? []).map((d) => ({ dimValue: d })) } },
        },
      });
    }
    const model: ModelMessage = {
      ...this.model,
      graph: { ...graph, initializer: kept, input: [...(graph.input ?? []), ...newInputs] },
    };
    return encodeModel(model);
  }
}

function numelOf(t: TensorMessage): number {
  let n = 1;
  for (const d of t.dims ?? []) n *= int64ToNumber(d);
  return n;
}
