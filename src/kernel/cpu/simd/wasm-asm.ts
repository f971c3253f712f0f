// A minimal WebAssembly binary writer: just enough (functions, one imported memory, i32/f32/v128 instructions
// including 128-bit SIMD) to build the CPU kernel's hot loops at run time, with no toolchain and no build step.

export type ValType = 'i32' | 'f32' | 'v128';
const VALTYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

function uleb(n: number): number[] {
  const out: number[] = [];
  n >>>= 0;
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const simd = (op: number): number[] => [0xfd, ...uleb(op)];

/** Instructions without immediates, by their text-format names (WebAssembly core spec + SIMD proposal). */
const PLAIN: Record<string, number[]> = {
  'i32.eqz': [0x45],
  'i32.eq': [0x46],
  'i32.ne': [0x47],
  'i32.lt_u': [0x49],
  'i32.gt_u': [0x4b],
  'i32.le_u': [0x4d],
  'i32.ge_u': [0x4f],
  'i32.add': [0x6a],
  'i32.sub': [0x6b],
  'i32.mul': [0x6c],
  'i32.and': [0x71],
  'i32.or': [0x72],
  'i32.xor': [0x73],
  'i32.shl': [0x74],
  'i32.shr_u': [0x76],
  'i32x4.splat': simd(0x11),
  'f32x4.splat': simd(0x13),
  'i32x4.eq': simd(0x37),
  'i32x4.ne': simd(0x38),
  'i32x4.lt_u': simd(0x3a),
  'i32x4.gt_s': simd(0x3b),
  'i32x4.gt_u': simd(0x3c),
  'i32x4.le_u': simd(0x3e),
  'i32x4.ge_u': simd(0x40),
  'f32x4.eq': simd(0x41),
  'f32x4.ne': simd(0x42),
  'f32x4.lt': simd(0x43),
  'f32x4.gt': simd(0x44),
  'f32x4.ge': simd(0x46),
  'v128.not': simd(0x4d),
  'v128.and': simd(0x4e),
  'v128.andnot': simd(0x4f),
  'v128.or': simd(0x50),
  'v128.xor': simd(0x51),
  'v128.bitselect': simd(0x52),
  'v128.any_true': simd(0x53),
  'i32x4.shl': simd(0xab),
  'i32x4.shr_u': simd(0xad),
  'i32x4.add': simd(0xae),
  'i32x4.sub': simd(0xb1),
  'i32x4.mul': simd(0xb5),
  'i32x4.bitmask': simd(0xa4),
  'i32x4.extend_low_i16x8_u': simd(0xa9),
  'i32x4.extend_high_i16x8_u': simd(0xaa),
  'f64x2.promote_low_f32x4': simd(0x5f),
  'f64x2.add': simd(0xf0),
  'f32x4.abs': simd(0xe0),
  'f32x4.add': simd(0xe4),
  'f32x4.sub': simd(0xe5),
  'f32x4.mul': simd(0xe6),
  'f32x4.div': simd(0xe7),
};

/** One function body under construction. Locals are numbered after the parameters, in declaration order. */
export class FunctionBuilder {
  private readonly bytes: number[] = [];
  private readonly localTypes: ValType[] = [];
  constructor(
    readonly name: string,
    readonly params: readonly ValType[],
    readonly results: readonly ValType[],
  ) {}

  /** Declares a local and returns its index. */
  local(type: ValType): number {
    this.localTypes.push(type);
    return this.params.length + this.localTypes.length - 1;
  }

  op(...names: string[]): this {
    for (const name of names) {
      const code = PLAIN[name];
      if (code === undefined) throw new Error(`wasm-asm: unknown instruction ${name}`);
      this.bytes.push(...code);
    }
    return this;
  }
  get(i: number): this {
    this.bytes.push(0x20, ...uleb(i));
    return this;
  }
  set(i: number): this {
    this.bytes.push(0x21, ...uleb(i));
    return this;
  }
  tee(i: number): this {
    this.bytes.push(0x22, ...uleb(i));
    return this;
  }
  i32(value: number): this {
    this.bytes.push(0x41, ...sleb(value));
    return this;
  }
  /** v128.const with four i32 lanes. */
  v128i32(a: number, b: number, c: number, d: number): this {
    const buf = new Uint8Array(new Int32Array([a, b, c, d]).buffer);
    this.bytes.push(...simd(0x0c), ...buf);
    return this;
  }
  i32Load(offset = 0): this {
    this.bytes.push(0x28, 2, ...uleb(offset));
    return this;
  }
  i32Store(offset = 0): this {
    this.bytes.push(0x36, 2, ...uleb(offset));
    return this;
  }
  v128Load(offset = 0): this {
    this.bytes.push(...simd(0x00), 4, ...uleb(offset));
    return this;
  }
  v128Store(offset = 0): this {
    this.bytes.push(...simd(0x0b), 4, ...uleb(offset));
    return this;
  }
  /** i8x16.shuffle with 16 lane indices into the concatenation of the two operands. */
  shuffle(lanes: readonly number[]): this {
    this.bytes.push(...simd(0x0d), ...lanes);
    return this;
  }
  extractLaneI32(lane: number): this {
    this.bytes.push(...simd(0x1b), lane);
    return this;
  }
  block(): this {
    this.bytes.push(0x02, 0x40);
    return this;
  }
  loop(): this {
    this.bytes.push(0x03, 0x40);
    return this;
  }
  if(): this {
    this.bytes.push(0x04, 0x40);
    return this;
  }
  else(): this {
    this.bytes.push(0x05);
    return this;
  }
  end(): this {
    this.bytes.push(0x0b);
    return this;
  }
  br(depth: number): this {
    this.bytes.push(0x0c, ...uleb(depth));
    return this;
  }
  brIf(depth: number): this {
    this.bytes.push(0x0d, ...uleb(depth));
    return this;
  }

  /** Encoded body: local declarations, instructions, end. */
  body(): number[] {
    const groups: number[] = [];
    let count = 0;
    for (let i = 0; i < this.localTypes.length; i++) {
      if (i > 0 && this.localTypes[i] === this.localTypes[i - 1]) continue;
      let j = i;
      while (j < this.localTypes.length && this.localTypes[j] === this.localTypes[i]) j++;
      groups.push(...uleb(j - i), VALTYPE[this.localTypes[i]]);
      count++;
    }
    const content = [...uleb(count), ...groups, ...this.bytes, 0x0b];
    return [...uleb(content.length), ...content];
  }
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function name(text: string): number[] {
  const b = [...new TextEncoder().encode(text)];
  return [...uleb(b.length), ...b];
}

/** A module importing `env.memory` and exporting every function by its name. */
export function buildModule(functions: readonly FunctionBuilder[]): Uint8Array<ArrayBuffer> {
  const types: number[] = [];
  for (const f of functions) {
    types.push(0x60, ...uleb(f.params.length), ...f.params.map((t) => VALTYPE[t]));
    types.push(...uleb(f.results.length), ...f.results.map((t) => VALTYPE[t]));
  }
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [...uleb(functions.length), ...types]),
    ...section(2, [...uleb(1), ...name('env'), ...name('memory'), 0x02, 0x00, 0x01]),
    ...section(3, [...uleb(functions.length), ...functions.flatMap((_, i) => uleb(i))]),
    ...section(7, [...uleb(functions.length), ...functions.flatMap((f, i) => [...name(f.name), 0x00, ...uleb(i)])]),
    ...section(10, [...uleb(functions.length), ...functions.flatMap((f) => f.body())]),
  ];
  return Uint8Array.from(bytes);
}
