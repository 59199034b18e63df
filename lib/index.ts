/**
 * amix: an access-method-independent exchange for Node.js. Everything a
 * user needs is exported here, with `export type` for types.
 *
 * @module
 */
export { AmixError, ErrorCode, isAmixError, errorToPlain, errorFromPlain, abortError, invalidArg } from './errors.js';
export type { AmixErrorOptions, PlainError } from './errors.js';
export { Container, ModuleState, ModuleRequest, TRANSITIONS, isAllowed } from './module.js';
export type { ModuleHandlers, ModuleContext, ModuleRecord, ContainerEvent, ContainerOptions, Transition } from './module.js';
export { Scope, DiscardPolicy, IdleStrategy, REQUIRED_OPERATIONS, OPTIONAL_OPERATIONS } from './primitive.js';
export type {
  Primitive, PrimitiveCharacteristics, ChannelAddress, ChannelHandle, ChannelEvent, ChannelStats,
  ChannelOptions, SendOptions, ReceiveOptions,
} from './primitive.js';
export { Channel } from './channel.js';
export type { ChannelReceiveOptions } from './channel.js';
export { PrimitiveRegistry, BUILTIN_PRIMITIVES, assertRegistration, assertPrimitive, checkChannelOptions, importSpecifier } from './registry.js';
export type { PrimitiveRegistration, PrimitiveInfo, PrimitiveQuery, PrimitiveRegistryOptions } from './registry.js';
export { PointRole, PointScope, TerminationMethod, Direction, DIRECTION_STEPS, DEFAULT_PRIMITIVE, normalizePoint, parseDirection } from './point.js';
export type { PointCharacteristics, PointRegistration, PointRegistrationInput } from './point.js';
export { Endpoint } from './endpoint.js';
export type { PointMessage, PointSendOptions, PointReceiveOptions, ListEntry, EndpointOptions } from './endpoint.js';
export type { PointContext, PointMain } from './host.js';
export { Fabric, Link, CALLER } from './fabric.js';
export type { FabricOptions, FabricEvent, ConnectOptions, DisconnectOptions, InstanceInfo, LinkInfo, InstanceState, LinkState, BrokerEntry } from './fabric.js';
export { Agent, AGENT_OPS } from './agent.js';
export type { AgentTarget, AgentEvent, AgentOp } from './agent.js';
export type { ExternalEnd } from './fabric.js';
export { Daemon, DAEMON_FILES, isAlive } from './daemon.js';
export type { DaemonOptions, ContainerInfo } from './daemon.js';
export { Peering, Conduit, controlAddress, checkPeerEndpoint } from './peering.js';
export type { PeeringOptions, PeerConfig, PeerInfo, ConduitStats, RemoteLinkInfo, PeeringHost } from './peering.js';
export { DaemonClient, ClientLink } from './client.js';
export type { DaemonClientOptions } from './client.js';
export { ControlConnection } from './connection.js';
export type { RequestHandler } from './connection.js';
export { encodeControl, encodeControlBody, decodeControl, ControlDecoder, PROTOCOL_PROTO, PROTOCOL_VERSION, MAX_CONTROL_FRAME } from './protocol.js';
export type { ControlMessage } from './protocol.js';
export { defaultDaemonDir, ensurePrivateDir } from './paths.js';
export { encodeEnvelope, decodeEnvelope, ENVELOPE_PROTO, ENVELOPE_TYPE } from './envelope.js';
export type { Envelope } from './envelope.js';
export { generateKeyPair, saveKeyPair, loadKeyPair, AllowList, isCurveKey, z85Encode, z85Decode, zapAuthenticator, ZapAuthenticator } from './keys.js';
export type { CurveKeyPair, RefusedPeer, ZapPolicy } from './keys.js';
/** The directory; its whole API (query compiler, migrations) is also at `amix/directory`. */
export { Directory, Visibility, DIRECTORY_FILE, parsePointId, comparePointIds, parseQuery, evaluateQuery } from './directory/index.js';
export type {
  Principal, PointView, PointUpdate, AttributeValue, Attribute, AttributeInput, QueryOptions, QueryResult, DirectoryPeer, DirectoryOptions, QueryNode,
  PointRegistration as DirectoryPointRegistration, PointRecord as DirectoryPointRecord,
} from './directory/index.js';
