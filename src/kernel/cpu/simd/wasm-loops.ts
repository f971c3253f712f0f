// Building blocks of the WebAssembly SIMD functions (wasm-*.ts): the 16-byte vector loop, a v128 load and a
// lane sum.
import type { FunctionBuilder } from './wasm-asm.ts';

/** Loops `i` over [0, bytes) in steps of 16 bytes (one v128). */
export function vectorLoop(f: FunctionBuilder, i: number, bytes: number, body: () => void): void {
  f.i32(0).set(i);
  f.block().loop();
  f.get(i).get(bytes).op('i32.ge_u').brIf(1);
  body();
  f.get(i).i32(16).op('i32.add').set(i).br(0);
  f.end().end();
}

/** Pushes v128.load(ptr + i). */
export function load(f: FunctionBuilder, ptr: number, i: number): void {
  f.get(ptr).get(i).op('i32.add').v128Load();
}

/** Sums the four i32 lanes of a v128 local onto the stack. */
export function sumLanes(f: FunctionBuilder, v: number): void {
  f.get(v).extractLaneI32(0).get(v).extractLaneI32(1).op('i32.add');
  f.get(v).extractLaneI32(2).op('i32.add').get(v).extractLaneI32(3).op('i32.add');
}
