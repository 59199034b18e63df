/**
 * The protobuf wire format, the little of it amix needs: varints, and
 * length-delimited fields walked without an object per field. The control
 * codec (`controlCodec.ts`) and the remote envelope (`lib/remote/envelope.ts`)
 * write and read their schemas with these instead of protobufjs at run time:
 * protobufjs loads the `long` package, whose WebAssembly module alone maps
 * about 4.5 MB more of the node binary into every process that imports it
 * (measured on amixd at idle). protobufjs stays the reference: the tests keep
 * the bytes equal to what it writes and reads.
 *
 * @module
 */

/** The wire types of protobuf (proto3 has no groups). */
export const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  Fixed32 = 5,
}

/** Bytes a varint of `v` (a non-negative safe integer) takes. */
export function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Write `v` (a non-negative safe integer) as a varint at `o`; returns the offset after it. */
export function writeVarint(out: Uint8Array, o: number, v: number): number {
  while (v >= 128) {
    out[o++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  out[o++] = v;
  return o;
}

/**
 * One field as {@link walkFields} found it: for a varint its value (exact up
 * to 2^53, larger ones rounded; callers check ranges), for a
 * length-delimited field where its bytes lie.
 */
export interface WireField {
  field: number;
  wire: WireType;
  /** The varint's value (wire type 0); 0 otherwise. */
  value: number;
  /** The bytes of a length-delimited field (wire type 2): `start` to `end`. */
  start: number;
  end: number;
}

/**
 * Walk the fields of one message between `start` and `end` of `b`, calling
 * `onField` for each (the same object, reused). Unknown fields are the
 * caller's to skip (by doing nothing). Throws what `fail(reason)` makes on a
 * truncated varint or field, a varint over 10 bytes, a zero field number, a
 * tag over 2^32 or a wire type protobuf does not have (3 and 4, the groups,
 * are refused too).
 */
export function walkFields(
  b: Uint8Array,
  start: number,
  end: number,
  onField: (f: WireField) => void,
  fail: (reason: string) => Error,
): void {
  let pos = start;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw fail('truncated inside a varint');
      const byte = b[pos++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
      mul *= 128;
    }
    throw fail('a varint longer than 10 bytes');
  };
  const f: WireField = { field: 0, wire: WireType.Varint, value: 0, start: 0, end: 0 };
  while (pos < end) {
    const tag = varint();
    if (tag > 0xffffffff || tag < 8) throw fail(`an invalid field tag ${tag}`);
    f.field = Math.floor(tag / 8);
    f.wire = (tag % 8) as WireType;
    f.value = 0;
    f.start = f.end = pos;
    if (f.wire === WireType.Varint) f.value = varint();
    else if (f.wire === WireType.LengthDelimited) {
      const n = varint();
      if (n > end - pos) throw fail(`field ${f.field} runs past the end`);
      f.start = pos;
      f.end = pos += n;
    } else if (f.wire === WireType.Fixed64 || f.wire === WireType.Fixed32) {
      const n = f.wire === WireType.Fixed64 ? 8 : 4;
      if (n > end - pos) throw fail(`field ${f.field} runs past the end`);
      f.start = pos;
      f.end = pos += n;
    } else throw fail(`unknown wire type ${f.wire}`);
    onField(f);
  }
}
