/**
 * The peer op table: how this daemon answers another daemon's control
 * requests (hello, directory resolve and query, and the halves of remote
 * flows). Arguments come off the network, so each handler checks what it
 * reads.
 *
 * @module
 */
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import { handlerTable, stringArg, type Handlers, type RpcHandler } from '../core/rpc.js';
import type { PointView } from '../directory/index.js';
import { parsePointId } from '../directory/index.js';
import type { Conduit } from './conduit.js';
import type { Direct } from './direct.js';
import { opened } from './flowCredit.js';
import type { Flows } from './flows.js';
import type { Sessions } from './sessions.js';
import type { PeeringCore, Route } from './state.js';
import type { Empty } from '../fabric/agent.js';
import { checkHello, dirOf, key, type FlowArgs, type Forward, type PeerHello, type PeerOps } from './types.js';

/** The hops and visited list a federated request carries on, if well formed. */
function forwardOf(a: Forward): Forward {
  return {
    ...(typeof a.hops === 'number' ? { hops: a.hops } : {}),
    ...(Array.isArray(a.visited) ? { visited: a.visited as string[] } : {}),
  };
}

/**
 * @internal The handler of every request from a peer: a hello binds the
 * sender; anything else waits for the sender's hello if one is in progress,
 * then goes to the op table with the sender's conduit.
 */
export function peerHandler(core: PeeringCore, sessions: Sessions, flows: Flows, direct: Direct): RpcHandler<Route> {
  const fabric = core.host.fabric;
  const directory = core.host.directory;
  const ops: Handlers<Omit<PeerOps, 'hello'>, Conduit> = {
    resolve: async (a) => (await directory.resolve(stringArg('resolve', a, 'nameOrId'), forwardOf(a))) ?? null,
    service: async (a, c) => {
      const op = stringArg('service', a, 'op');
      if (!core.host.service)
        throw new AmixError(
          ErrorCode.AMIX_ERR_UNAUTHORIZED,
          `this daemon serves no service ops to peers (asked ${describe(op)})`,
        );
      const args = a.args;
      if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args)))
        throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'service args must be an object', {
          details: { option: 'args' },
        });
      // The caller is the peer daemon its key authenticated (c.id), never a field it sends.
      return core.host.service(c.id, op, (args ?? {}) as Record<string, unknown>);
    },
    query: async (a) => {
      const r = await directory.query(stringArg('query', a, 'expr'), {
        ...forwardOf(a),
        ...(typeof a.limit === 'number' ? { limit: a.limit } : {}),
        ...(typeof a.offset === 'number' ? { offset: a.offset } : {}),
      });
      return { points: r.points, more: r.more };
    },
    open: async (a, c) => {
      // The peer will send from `sender` to our point `receiver`: check the receiver and open its link now.
      const receiver = stringArg('open', a, 'receiver');
      const view = directory.getPoint(receiver);
      if (view && (view.record as { role?: string }).role === 'sender')
        throw new AmixError(ErrorCode.AMIX_ERR_BAD_DIRECTION, `point "${view.name}" is a sender and cannot receive`);
      const f = await flows.openIn(c, stringArg('open', a, 'sender'), receiver);
      opened(f, a.from, a.sent);
      return {};
    },
    openOut: async (a, c) => {
      // The peer wants our point `sender` to send to its point `receiver`.
      const { from, to } = await outEnds('openOut', a, c);
      const flow = await flows.openOut(c, from, to);
      return { ...fabric.link(flow.link), from: flow.acked };
    },
    close: async (a, c) => {
      const k = key(stringArg('close', a, 'sender'), stringArg('close', a, 'receiver'));
      await flows.closeOut(c, k);
      await flows.closeIn(c, k);
      return {};
    },
    suspend: (a, c) => setFlowSuspended(a, c, true),
    resume: (a, c) => setFlowSuspended(a, c, false),
    directOpen: (a, c) =>
      direct.openIn(
        c,
        stringArg('directOpen', a, 'sender'),
        stringArg('directOpen', a, 'receiver'),
        stringArg('directOpen', a, 'clientKey'),
        stringArg('directOpen', a, 'link'),
      ),
    directOut: async (a, c) => {
      // The peer wants our point `sender` to send straight to its `receiver`: we drive it, as for our own link.
      const { from, to } = await outEnds('directOut', a, c);
      if (parsePointId(to.id)?.directoryId !== c.id)
        throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `${describe(a.receiver)} is not a point of ${c.id}`);
      return { link: await direct.openOut(c, from, to) };
    },
    directClose: async (a, c) => {
      await direct.close(c, stringArg('directClose', a, 'link'));
      return {};
    },
  };
  /** A flow from our point `sender` to the peer's `receiver`: both views, or `AMIX_ERR_UNKNOWN_POINT`. */
  const outEnds = async (op: string, a: FlowArgs, c: Conduit): Promise<{ from: PointView; to: PointView }> => {
    const from = directory.getPoint(stringArg(op, a, 'sender'));
    if (!from || parsePointId(from.id)?.directoryId !== core.id)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no point identified ${describe(a.sender)} on ${core.id}`);
    const to = (await core.request(c, 'resolve', {
      nameOrId: stringArg(op, a, 'receiver'),
      hops: 0,
    })) as PointView | null;
    if (!to)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `peer ${c.id} does not know ${describe(a.receiver)}`);
    return { from, to };
  };
  const setFlowSuspended = async (a: FlowArgs, c: Conduit, on: boolean): Promise<Empty> => {
    const op = on ? 'suspend' : 'resume';
    const sender = stringArg(op, a, 'sender');
    const receiver = stringArg(op, a, 'receiver');
    // A conduit flow's local link, or a direct flow's that this daemon drives (the sending end is here).
    const link = c.out.get(key(sender, receiver))?.link ?? direct.flowLink(sender, receiver);
    if (link === undefined || parsePointId(sender)?.directoryId !== core.id)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_LINK, `no flow ${a.sender} -> ${a.receiver} here`);
    await (on ? fabric.suspend(link) : fabric.resume(link));
    return {};
  };
  const table = handlerTable(
    ops,
    (op) => new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `unknown peer request ${describe(op)}`),
  );
  return async (op, args, from) => {
    const sender = from.sender!;
    const dir = dirOf(sender) ?? sender;
    from.op = op;
    if (op === 'hello') {
      // Keyed, the reply goes out on the conduit's own control channel, to the
      // endpoint the peer's key serves (checked in bind): only that key's holder reads it.
      core.hellosInFlight++;
      try {
        from.conduit = await sessions.bind(checkHello(args), undefined, from.slot ?? null);
      } finally {
        core.hellosInFlight--;
      }
      return core.helloArgs(core.keys ? core.slots.get((args as unknown as PeerHello).key!) : undefined);
    }
    if (core.keys) {
      // Keyed, requests come in on the slot of their key only (the control loop drops them elsewhere).
      const slot = from.slot!;
      from.conduit = slot.conduit?.ctlTx ? slot.conduit : await slot.whenBound(core.helloGrace);
    } else {
      from.conduit = core.peers.get(dir);
      // A peer answers our hello and may send requests at once; they can get
      // here before our side of that hello has bound its conduit (the channels
      // open asynchronously). Wait for it rather than drop the request.
      if (!from.conduit?.ctlTx) from.conduit = await sessions.whenPeer(dir);
    }
    if (!from.conduit) throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, `say hello before ${describe(op)}`);
    return (await table(op, args, from.conduit)) ?? null;
  };
}
