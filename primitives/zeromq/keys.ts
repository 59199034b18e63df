/**
 * CURVE keys for remote links (CurveZMQ): key pairs, key files, an
 * allow-list of peer public keys, and the one ZAP handler of the process
 * that enforces allow-lists.
 *
 * ZeroMQ asks a ZAP handler (RFC 27) bound at `inproc://zeromq.zap.01` of
 * its context whether to accept each CURVE client. Only one handler may be
 * bound per context, so every amix socket shares {@link zapAuthenticator}:
 * a server socket gets its own ZAP domain, registers that domain with an
 * allow-list, and the handler answers 200 for a listed client key and 400
 * for any other. Domains nobody registered get 200, which is what ZeroMQ
 * does when no handler is bound, so sockets outside amix behave as before.
 * amix's own keyed sockets also set `zapEnforceDomain`, so they refuse every
 * client if the handler is ever missing instead of accepting all.
 *
 * @module
 */
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import * as zmq from 'zeromq';
import { AmixError, ErrorCode } from '../../lib/core/errors.js';

/** A CURVE key pair, each key Z85-encoded (40 characters). */
export interface CurveKeyPair {
  readonly publicKey: string;
  readonly secretKey: string;
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < Z85.length; i++) Z85_INDEX[Z85.charCodeAt(i)] = i;
const KEY_RE = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

/** Z85-encode bytes (length a multiple of 4), as ZeroMQ prints keys. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0)
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'z85Encode needs a length that is a multiple of 4', {
      details: { length: bytes.length },
    });
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let v = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
    const chunk = new Array<string>(5);
    for (let j = 4; j >= 0; j--) {
      chunk[j] = Z85[v % 85]!;
      v = Math.floor(v / 85);
    }
    out += chunk.join('');
  }
  return out;
}

/** Decode a Z85 string (length a multiple of 5). `AMIX_ERR_INVALID_ARG` for anything else. */
export function z85Decode(text: string): Uint8Array {
  if (typeof text !== 'string' || text.length % 5 !== 0)
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'a Z85 string has a length that is a multiple of 5', {});
  const out = new Uint8Array((text.length / 5) * 4);
  for (let i = 0, o = 0; i < text.length; i += 5, o += 4) {
    let v = 0;
    for (let j = 0; j < 5; j++) {
      const c = text.charCodeAt(i + j);
      const d = c < 128 ? Z85_INDEX[c]! : -1;
      if (d < 0) throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `not a Z85 character at ${i + j}`, {});
      v = v * 85 + d;
    }
    if (v > 0xffffffff) throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `Z85 group at ${i} is out of range`, {});
    out[o] = v >>> 24;
    out[o + 1] = (v >>> 16) & 0xff;
    out[o + 2] = (v >>> 8) & 0xff;
    out[o + 3] = v & 0xff;
  }
  return out;
}

/** True when `key` is a Z85-encoded 32-byte CURVE key. */
export function isCurveKey(key: unknown): key is string {
  if (typeof key !== 'string' || !KEY_RE.test(key)) return false;
  try {
    z85Decode(key);
    return true;
  } catch {
    return false;
  }
}

function checkKey(name: string, key: unknown): string {
  if (!isCurveKey(key))
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${name} must be a Z85-encoded CURVE key of 40 characters`, {
      details: { option: name },
    });
  return key;
}

/**
 * A new random CURVE key pair (zeromq's `curveKeyPair()`). Throws
 * `AMIX_ERR_UNAUTHORIZED` if the ZeroMQ build has no CURVE support.
 *
 * @example
 * const { publicKey, secretKey } = generateKeyPair()
 */
export function generateKeyPair(): CurveKeyPair {
  if (zmq.capability.curve !== true)
    throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, 'this ZeroMQ build has no CURVE support', {});
  const { publicKey, secretKey } = zmq.curveKeyPair();
  return { publicKey, secretKey };
}

/** The key file format of {@link saveKeyPair}. */
interface KeyFile {
  version: 1;
  publicKey: string;
  secretKey: string;
}

async function writeAtomic(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/**
 * Write a key pair to `file` as JSON, mode 0600, atomically (temporary file
 * then rename); the directory is created 0700 if missing.
 *
 * @example
 * await saveKeyPair('/etc/amix/curve.key', generateKeyPair())
 */
export async function saveKeyPair(file: string, pair: CurveKeyPair): Promise<void> {
  const data: KeyFile = {
    version: 1,
    publicKey: checkKey('publicKey', pair.publicKey),
    secretKey: checkKey('secretKey', pair.secretKey),
  };
  await writeAtomic(file, JSON.stringify(data, null, 2) + '\n');
}

/**
 * Read a key pair written by {@link saveKeyPair}. Refuses, with
 * `AMIX_ERR_UNAUTHORIZED`, a file that group or others may read or write
 * (as ssh does), and with `AMIX_ERR_INVALID_ARG` a file that is not a key
 * file.
 */
export async function loadKeyPair(file: string): Promise<CurveKeyPair> {
  let mode: number;
  let text: string;
  try {
    mode = (await stat(file)).mode;
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `cannot read key file ${file}: ${(err as Error).message}`, {
      cause: err,
      details: { file },
    });
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_UNAUTHORIZED,
      `key file ${file} is accessible by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
      { details: { path: file, mode: mode & 0o777 } },
    );
  }
  let data: Partial<KeyFile>;
  try {
    data = JSON.parse(text) as Partial<KeyFile>;
  } catch (err) {
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `key file ${file} is not JSON`, {
      cause: err,
      details: { file },
    });
  }
  if (data?.version !== 1 || !isCurveKey(data.publicKey) || !isCurveKey(data.secretKey)) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `key file ${file} is not an amix CURVE key file (version 1 with publicKey and secretKey)`,
      { details: { file } },
    );
  }
  return { publicKey: data.publicKey, secretKey: data.secretKey };
}

/** What an allow-list line may name a key's daemon (a peer's directory id, or any label). */
export const PEER_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The public keys a server accepts, like ssh's `authorized_keys`: one Z85
 * key per line in its file, optionally followed by the id of the daemon the
 * key belongs to (`<key> <id>`); `#` starts a comment line. The ZAP handler
 * only reads the keys; peering (`lib/remote`) binds each key to its id: a
 * key with an id may say hello as that id only, and no other key may.
 *
 * @example
 * const allow = new AllowList([peer.publicKey, `${other.publicKey} 0123456789abcdef`]); allow.has(key)
 */
export class AllowList implements Iterable<string> {
  readonly #keys = new Map<string, string | undefined>();

  /** Start with `entries`, each a key or `"<key> <id>"` (checked: `AMIX_ERR_INVALID_ARG` for a malformed one). */
  constructor(entries: Iterable<string> = []) {
    for (const e of entries) {
      const [k, id, ...rest] = String(e).trim().split(/\s+/);
      if (rest.length > 0)
        throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'an allow-list entry is "<key> [<id>]"', {});
      this.add(k!, id);
    }
  }

  /** Add a public key, bound to daemon `id` when given (an id names one key only). */
  add(publicKey: string, id?: string): this {
    checkKey('publicKey', publicKey);
    if (id !== undefined) {
      if (!PEER_ID_RE.test(id))
        throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `an allow-list id must match ${PEER_ID_RE}`, {
          details: { option: 'allow' },
        });
      const other = this.keyOf(id);
      if (other !== undefined && other !== publicKey)
        throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `allow-list id ${id} is given to two keys`, {
          details: { option: 'allow' },
        });
    }
    this.#keys.set(publicKey, id ?? this.#keys.get(publicKey));
    return this;
  }
  /** Remove a public key; true if it was listed. */
  delete(publicKey: string): boolean {
    return this.#keys.delete(publicKey);
  }
  /** True when the Z85 key is listed. */
  has(publicKey: string): boolean {
    return this.#keys.has(publicKey);
  }
  /** True when the raw 32-byte key (as ZAP presents it) is listed. */
  hasRaw(publicKey: Uint8Array): boolean {
    return publicKey.length === 32 && this.#keys.has(z85Encode(publicKey));
  }
  /** The id a listed key is bound to, if its line names one. */
  idOf(publicKey: string): string | undefined {
    return this.#keys.get(publicKey);
  }
  /** The key a line binds to `id`, if any. */
  keyOf(id: string): string | undefined {
    for (const [k, v] of this.#keys) if (v === id) return k;
    return undefined;
  }
  /** How many keys are listed. */
  get size(): number {
    return this.#keys.size;
  }
  [Symbol.iterator](): Iterator<string> {
    return this.#keys.keys();
  }

  /** Write the list to `file`, one `<key> [<id>]` a line, mode 0600, atomically. */
  async save(file: string): Promise<void> {
    const lines = [...this.#keys].map(([k, id]) => (id === undefined ? k : `${k} ${id}`));
    await writeAtomic(
      file,
      `# amix CURVE allow-list: one Z85 public key a line, then the daemon id it may use\n${lines.join('\n')}\n`,
    );
  }

  /** Read a list written by {@link save} (or by hand). `AMIX_ERR_INVALID_ARG` names the bad line. */
  static async load(file: string): Promise<AllowList> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `cannot read allow-list ${file}: ${(err as Error).message}`, {
        cause: err,
        details: { file },
      });
    }
    const list = new AllowList();
    text.split('\n').forEach((raw, i) => {
      // Z85 uses '#', so only a line that starts with it is a comment.
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const [k, id, ...rest] = line.split(/\s+/);
      const bad = (what: string): AmixError =>
        new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `allow-list ${file} line ${i + 1} ${what}`, {
          details: { file, line: i + 1 },
        });
      if (!isCurveKey(k)) throw bad('is not a Z85 public key');
      if (rest.length > 0 || (id !== undefined && !PEER_ID_RE.test(id)))
        throw bad('is not "<public key> [<daemon id>]"');
      if (id !== undefined && list.keyOf(id) !== undefined && list.keyOf(id) !== k)
        throw bad(`gives id ${id} to a second key`);
      list.add(k, id);
    });
    return list;
  }
}

function x25519(raw: Uint8Array, secret?: Uint8Array): KeyObject {
  const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
  return secret
    ? createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', x: b64(raw), d: b64(secret) }, format: 'jwk' })
    : createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64(raw) }, format: 'jwk' });
}

function keyProofMac(own: CurveKeyPair, peerPublicKey: string, fromKey: string, toKey: string, text: string): Buffer {
  // CurveZMQ keys are X25519 keys: both ends derive the same secret from their own secret and the other's public key.
  const shared = diffieHellman({
    privateKey: x25519(z85Decode(own.publicKey), z85Decode(own.secretKey)),
    publicKey: x25519(z85Decode(peerPublicKey)),
  });
  return createHmac('sha256', shared).update(`amix-key-proof/1\0${fromKey}\0${toKey}\0${text}`).digest();
}

/**
 * A proof that the holder of `own` wrote `text` for the holder of
 * `peerPublicKey` (and only for it): an HMAC keyed with their X25519 shared
 * secret, Z85-encoded. Peering puts one in every hello, so a hello's id is
 * bound to the key that says it. Only the two key holders can make or check it.
 */
export function proveKey(own: CurveKeyPair, peerPublicKey: string, text: string): string {
  return z85Encode(keyProofMac(own, checkKey('peerPublicKey', peerPublicKey), own.publicKey, peerPublicKey, text));
}

/** True when `proof` is {@link proveKey} by the holder of `fromKey` of `text` for `own`. Never throws. */
export function checkKeyProof(own: CurveKeyPair, fromKey: unknown, text: string, proof: unknown): boolean {
  if (!isCurveKey(fromKey) || typeof proof !== 'string') return false;
  try {
    const want = keyProofMac(own, fromKey, fromKey, own.publicKey, text);
    const got = Buffer.from(z85Decode(proof));
    return got.length === want.length && timingSafeEqual(got, want);
  } catch {
    return false;
  }
}

/** What the ZAP handler knows of a refused client. */
export interface RefusedPeer {
  /** The ZAP domain (one per server socket). */
  domain: string;
  /** The client's IP address. */
  address: string;
  /** `CURVE`, `NULL` or `PLAIN`. */
  mechanism: string;
  /** The client's Z85 public key, for CURVE. */
  publicKey?: string;
}

/** A domain's policy with the ZAP handler. */
export interface ZapPolicy {
  /** Keys accepted; anything else is refused. */
  allow: AllowList;
  /** Called for every refused client; must not throw. */
  onRefused?: (peer: RefusedPeer) => void;
}

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

/**
 * The process's one ZAP handler. Sockets register a domain with
 * {@link ZapAuthenticator.register} before they bind and release it after
 * they close; the handler's socket exists only while a domain is
 * registered, so an idle process keeps no socket open.
 */
export class ZapAuthenticator {
  readonly #domains = new Map<string, ZapPolicy>();
  #socket: zmq.Router | undefined;
  #ready: Promise<void> | undefined;
  #stopping: Promise<void> = Promise.resolve();
  #nextDomain = 1;
  /** Requests answered 200 and 400 since the process started. */
  readonly counts = { accepted: 0, refused: 0 };

  /** A domain name unique in this process, for a new server socket. */
  newDomain(prefix = 'amix'): string {
    return `${prefix}.${process.pid}.${this.#nextDomain++}`;
  }

  /**
   * Enforce `policy` for server sockets whose `zapDomain` is `domain`.
   * Resolves once the handler is bound. Returns the release function.
   * `AMIX_ERR_INVALID_ARG` if the domain is taken.
   */
  async register(domain: string, policy: ZapPolicy): Promise<() => Promise<void>> {
    if (this.#domains.has(domain))
      throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `ZAP domain ${domain} is already registered`, {
        details: { domain },
      });
    this.#domains.set(domain, policy);
    try {
      await this.#stopping;
      this.#ready ??= this.#start();
      await this.#ready;
    } catch (err) {
      this.#domains.delete(domain);
      throw err;
    }
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      this.#domains.delete(domain);
      if (this.#domains.size === 0 && this.#socket) {
        const s = this.#socket;
        this.#socket = undefined;
        this.#ready = undefined;
        s.close();
        // The inproc endpoint is free only once the close is processed; a register right after must wait.
        this.#stopping = new Promise((r) => setImmediate(r));
        await this.#stopping;
      }
    };
  }

  async #start(): Promise<void> {
    const socket = new zmq.Router({ linger: 0 });
    // The inproc endpoint of a handler closed a moment ago may not be free yet.
    for (let attempt = 0; ; attempt++) {
      try {
        await socket.bind(ZAP_ENDPOINT);
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt >= 50) {
          socket.close();
          this.#ready = undefined;
          throw new AmixError(
            ErrorCode.AMIX_ERR_INTERNAL,
            `cannot bind the ZAP handler at ${ZAP_ENDPOINT}: ${(err as Error).message}`,
            { cause: err },
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    this.#socket = socket;
    void this.#serve(socket);
  }

  async #serve(socket: zmq.Router): Promise<void> {
    try {
      for await (const frames of socket) {
        const reply = this.#answer(frames);
        if (reply) await socket.send(reply);
      }
    } catch {
      // The socket was closed under a pending receive or send: the handler is stopping.
    }
  }

  #answer(frames: Buffer[]): Array<Buffer | string> | undefined {
    // RFC 27: [routing id, empty, version, request id, domain, address, identity, mechanism, credentials...]
    if (frames.length < 8) return undefined;
    const [route, empty, version, requestId, domainB, addressB, , mechanismB, ...credentials] = frames as [
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      ...Buffer[],
    ];
    const domain = domainB.toString();
    const mechanism = mechanismB.toString();
    const policy = this.#domains.get(domain);
    let ok = true;
    let user = '';
    let publicKey: string | undefined;
    if (policy) {
      const key = mechanism === 'CURVE' ? credentials[0] : undefined;
      publicKey = key && key.length === 32 ? z85Encode(key) : undefined;
      ok = publicKey !== undefined && policy.allow.has(publicKey);
      user = ok ? publicKey! : '';
      if (!ok) {
        this.counts.refused++;
        try {
          policy.onRefused?.({ domain, address: addressB.toString(), mechanism, ...(publicKey ? { publicKey } : {}) });
        } catch {
          // A throwing observer must not take the handler down.
        }
      } else this.counts.accepted++;
    }
    return [
      route,
      empty,
      version,
      requestId,
      ok ? '200' : '400',
      ok ? 'OK' : 'public key not in the allow-list',
      user,
      '',
    ];
  }
}

/** The process's ZAP handler; use it for every CURVE server socket. */
export const zapAuthenticator = new ZapAuthenticator();
