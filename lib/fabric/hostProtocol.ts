/**
 * What the fabric and a point host say to each other over the worker port or
 * the child's IPC channel: the host's op table (its own `init`, `start` and
 * `terminate`, plus the agent's link commands), its events, and the wire
 * shape of those messages (structured-clone objects; errors travel as plain
 * fields and are rebuilt from their code). Kept apart from `host.ts`, which
 * starts a host when it is loaded.
 *
 * @module
 */
import { errorFromPlain, errorToPlain, type PlainError } from '../core/errors.js';
import type { PrimitiveRegistration } from '../core/registry.js';
import type { RpcMessage } from '../core/rpc.js';
import type { AgentOps, Empty } from './agent.js';
import type { PointRegistration } from './point.js';

/** @internal The init request a host receives first. */
export interface HostInit {
  registration: PointRegistration;
  instance: string;
  primitives: PrimitiveRegistration[];
  baseDir: string;
  runtimeDir?: string;
}

/** @internal The host's op table: its lifecycle ops, then the agent's link commands. */
export interface HostOps extends AgentOps {
  /** Load the point's module (first request). */
  init: { args: HostInit; result: { pid: number } };
  /** Run the point's `main`. */
  start: { args: Empty | Record<string, unknown>; result: Empty };
  /** End the point: abort its signal, quiesce within `timeoutMs`, close its channels. */
  terminate: { args: { timeoutMs: number }; result: Empty };
  /**
   * After a `terminate` whose point's main has returned: forget the point and take the next `init`
   * (the fabric's `reuseHosts`). Refused (`AMIX_ERR_BAD_TRANSITION`) while its main still runs.
   */
  recycle: { args: Empty; result: Empty };
}

/** @internal An event a host reports: an agent event (its error as plain fields), or the end of `main`. */
export type HostEvent =
  | { type: 'channel'; link: string; peer: string; event: string; error?: PlainError }
  | { type: 'linkEnded'; link: string; peer: string }
  | { type: 'mainEnded'; error?: PlainError };

/** @internal Control messages between fabric and host, as they travel. */
export type HostMessage =
  | { kind: 'req'; id: number; op: string; args: Record<string, unknown> }
  | { kind: 'res'; id: number; ok: true; result?: unknown }
  | { kind: 'res'; id: number; ok: false; error: PlainError }
  | { kind: 'event'; event: Record<string, unknown> & { type: string } };

/** @internal An {@link RpcMessage} in the host's wire shape. */
export function toHostWire(m: RpcMessage): HostMessage {
  switch (m.kind) {
    case 'request':
      return { kind: 'req', id: m.id, op: m.op, args: m.args };
    case 'reply':
      return m.ok
        ? { kind: 'res', id: m.id, ok: true, result: m.result }
        : { kind: 'res', id: m.id, ok: false, error: errorToPlain(m.error) };
    case 'event':
      return { kind: 'event', event: { type: m.type, ...m.body } };
  }
}

/** @internal A host wire message as an {@link RpcMessage} (errors rebuilt from their code). */
export function fromHostWire(m: HostMessage): RpcMessage {
  switch (m.kind) {
    case 'req':
      return { kind: 'request', id: m.id, op: m.op, args: m.args };
    case 'res':
      return m.ok
        ? { kind: 'reply', id: m.id, ok: true, result: m.result }
        : { kind: 'reply', id: m.id, ok: false, error: errorFromPlain(m.error) };
    case 'event': {
      const { type, ...body } = m.event;
      return { kind: 'event', type, body };
    }
  }
}
