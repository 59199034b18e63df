/**
 * The daemon's principals: who a client is, decided by the credential it
 * presents and nothing else. Two are built in: the administrator (the token
 * in `DIR/admin.token`) and `user` (the token in `DIR/token`, the daemon
 * owner's ordinary credential). The administrator adds more with
 * `amix principal add NAME`; each gets a random token, handed out once,
 * and the store (`DIR/principals.json`, 0600) keeps only its SHA-256: the
 * tokens are 192 random bits, so a fast hash gives nothing to brute force.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import { createPrivateFile, readPrivateFile } from '../core/paths.js';
import { DAEMON_FILES, newToken, tokenFile } from './files.js';
import { requireAdmin } from './access.js';

/** The administrator's principal name. */
export const ADMIN_PRINCIPAL = 'admin';
/** The default principal, whose token is `DIR/token`. */
export const USER_PRINCIPAL = 'user';

/** A principal as `principal.ls` shows it. */
export interface PrincipalInfo {
  name: string;
  /** Built in (`admin`, `user`): cannot be removed. */
  builtin: boolean;
  admin: boolean;
  /** When it was added (ms since the epoch); absent for the built-in ones. */
  createdAt?: number;
}

interface StoredPrincipal {
  name: string;
  /** SHA-256 of the token, hex. */
  sha256: string;
  createdAt: number;
}

/** A principal name: a letter, then up to 63 letters, digits, `_`, `.` or `-`. */
const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** Who a token belongs to: `{ name, admin }`, or undefined for none. */
export interface Identity {
  name: string;
  admin: boolean;
}

/**
 * The principal store of one daemon directory. `open` reads (or makes) the
 * two built-in tokens and the stored hashes; every state file is read with
 * no-follow and must be ours and 0600 (`AMIX_ERR_UNSAFE_DIR`).
 */
export class Principals {
  readonly #dir: string;
  #admin: Buffer = Buffer.alloc(0);
  #user: Buffer = Buffer.alloc(0);
  #stored: StoredPrincipal[] = [];

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /** Load the principals of daemon directory `dir`, creating the built-in tokens if missing. */
  static async open(dir: string): Promise<Principals> {
    const p = new Principals(dir);
    p.#user = digest(await tokenFile(join(dir, DAEMON_FILES.token)));
    p.#admin = digest(await tokenFile(join(dir, DAEMON_FILES.adminToken)));
    const text = await readPrivateFile(p.#file);
    if (text !== undefined) {
      let parsed: { version?: unknown; principals?: unknown };
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch (err) {
        throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${p.#file} is not JSON: ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (parsed.version !== 1 || !Array.isArray(parsed.principals))
        throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${p.#file} is not a version 1 principal store`);
      p.#stored = (parsed.principals as StoredPrincipal[]).filter(
        (s) => typeof s?.name === 'string' && NAME.test(s.name) && /^[0-9a-f]{64}$/.test(String(s.sha256)),
      );
    }
    return p;
  }

  get #file(): string {
    return join(this.#dir, DAEMON_FILES.principalStore);
  }

  /**
   * Who holds `token`: compared in constant time against every credential
   * (the work does not depend on which one matches, or whether any does).
   */
  identify(token: unknown): Identity | undefined {
    if (typeof token !== 'string' || token === '') return undefined;
    const d = digest(token);
    let found: Identity | undefined;
    if (timingSafeEqual(d, this.#admin)) found = { name: ADMIN_PRINCIPAL, admin: true };
    if (timingSafeEqual(d, this.#user)) found ??= { name: USER_PRINCIPAL, admin: false };
    for (const s of this.#stored)
      if (timingSafeEqual(d, Buffer.from(s.sha256, 'hex'))) found ??= { name: s.name, admin: false };
    return found;
  }

  /** Every principal, the built-in ones first. */
  list(): PrincipalInfo[] {
    return [
      { name: ADMIN_PRINCIPAL, builtin: true, admin: true },
      { name: USER_PRINCIPAL, builtin: true, admin: false },
      ...this.#stored.map((s) => ({ name: s.name, builtin: false, admin: false, createdAt: s.createdAt })),
    ];
  }

  /**
   * Add principal `name` with a new random token, stored hashed; the token
   * is returned, once, for the caller to hand out. `AMIX_ERR_INVALID_ARG`
   * for a bad name, `AMIX_ERR_DUPLICATE` for one that exists (or is built in).
   */
  async add(name: unknown): Promise<{ name: string; token: string }> {
    if (typeof name !== 'string' || !NAME.test(name))
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `a principal name is a letter, then up to 63 letters, digits, "_", "." or "-" (got ${describe(name)})`,
        { details: { argument: 'name' } },
      );
    if (this.list().some((p) => p.name === name))
      throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `principal ${name} exists already`, { details: { name } });
    const token = newToken();
    const next = [...this.#stored, { name, sha256: digest(token).toString('hex'), createdAt: Date.now() }];
    await this.#save(next);
    this.#stored = next;
    return { name, token };
  }

  /** Remove principal `name`: its token stops working at once. `AMIX_ERR_INVALID_ARG` for a built-in or unknown one. */
  async remove(name: unknown): Promise<void> {
    const hit = this.#stored.find((s) => s.name === name);
    if (!hit)
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        name === ADMIN_PRINCIPAL || name === USER_PRINCIPAL
          ? `principal ${String(name)} is built in and cannot be removed`
          : `no principal named ${describe(name)}`,
        { details: { argument: 'name' } },
      );
    const next = this.#stored.filter((s) => s !== hit);
    await this.#save(next);
    this.#stored = next;
    // The token file `principal add` wrote by default, if it is still there (unlink never follows a symlink).
    await unlink(join(this.#dir, DAEMON_FILES.principals, `${hit.name}.token`)).catch(() => {});
  }

  /** Write the store atomically: a new 0600 file made with O_EXCL|O_NOFOLLOW, renamed over the old one. */
  async #save(list: StoredPrincipal[]): Promise<void> {
    const tmp = `${this.#file}.tmp`;
    await unlink(tmp).catch(() => {});
    await createPrivateFile(tmp, `${JSON.stringify({ version: 1, principals: list }, null, 1)}\n`);
    await rename(tmp, this.#file);
  }
}

/** Who asks a principal op: its principal name and whether it is the administrator. */
interface Asker {
  owner: string;
  admin: boolean;
}

/**
 * The daemon's `principal.*` handlers, each for the administrator only
 * (`AMIX_ERR_UNAUTHORIZED` `{ op, principal }`); `removed` is told each
 * name `principal.rm` removed, to close its connections.
 */
export function principalHandlers(store: () => Principals, removed: (name: string) => void) {
  return {
    'principal.add': (a: { name: string }, c: Asker) => {
      requireAdmin(c, 'principal.add');
      return store().add(a.name);
    },
    'principal.ls': (_a: object, c: Asker) => {
      requireAdmin(c, 'principal.ls');
      return store().list();
    },
    'principal.rm': async (a: { name: string }, c: Asker) => {
      requireAdmin(c, 'principal.rm');
      await store().remove(a.name);
      removed(a.name);
      return {};
    },
  };
}
