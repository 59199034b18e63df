/**
 * The bits of the NATS KV client cluster mode uses, typed loosely (the
 * client is loaded at run time only), and the encodings of values and keys.
 *
 * @module
 */

// The bits of the NATS client we use, typed loosely (the module is loaded at run time).
export interface KvEntry {
  key: string;
  value: Uint8Array;
  revision: number;
  created: Date;
  operation: 'PUT' | 'DEL' | 'PURGE';
}
export interface Kv {
  create(k: string, v: Uint8Array): Promise<number>;
  put(k: string, v: Uint8Array): Promise<number>;
  get(k: string): Promise<KvEntry | null>;
  delete(k: string, o?: { previousSeq: number }): Promise<void>;
  watch(o?: { key?: string; resumeFromRevision?: number }): Promise<AsyncIterable<KvEntry> & { stop(): void }>;
  status(): Promise<{ streamInfo: { state: { last_seq: number } } }>;
  keys(k?: string): Promise<AsyncIterable<string>>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
export const json = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));
export const parse = (b: Uint8Array): unknown => {
  try {
    return JSON.parse(dec.decode(b));
  } catch {
    return undefined;
  }
};
/** A point name as a KV key: base64url (KV keys allow `[-_=.A-Za-z0-9]`, names allow anything). */
export const nameKey = (name: string): string => `n${Buffer.from(name, 'utf8').toString('base64url')}`;
