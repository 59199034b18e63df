/**
 * `amix/internal`: everything the public entry (`amix`) exports, and the
 * parts behind it: the control protocol codec and connection, the daemon,
 * peering and its envelope, CURVE keys, the directory, the agent, and the
 * checks and helpers the layers share. For amix's own tools and tests, and
 * for the curious; no stability promise. Importing it loads ZeroMQ and
 * SQLite.
 *
 * @module
 */
export * from './index.js';
export {
  AmixError,
  ErrorCode,
  isAmixError,
  errorToPlain,
  errorFromPlain,
  abortError,
  invalidArg,
} from './core/errors.js';
export type { AmixErrorOptions, PlainError } from './core/errors.js';
export { Container, ModuleState, ModuleRequest, TRANSITIONS, isAllowed } from './core/module.js';
export type {
  ModuleHandlers,
  ModuleContext,
  ModuleRecord,
  ContainerEvent,
  ContainerOptions,
  Transition,
} from './core/module.js';
export { Scope, DiscardPolicy, IdleStrategy, REQUIRED_OPERATIONS, OPTIONAL_OPERATIONS } from './core/primitive.js';
export type {
  Primitive,
  PrimitiveCharacteristics,
  ChannelAddress,
  ChannelHandle,
  ChannelEvent,
  ChannelStats,
  ChannelOptions,
  SendOptions,
  ReceiveOptions,
} from './core/primitive.js';
export { Channel } from './core/channel.js';
export type { ChannelReceiveOptions } from './core/channel.js';
export {
  PrimitiveRegistry,
  BUILTIN_PRIMITIVES,
  assertRegistration,
  assertPrimitive,
  checkChannelOptions,
  importSpecifier,
} from './core/registry.js';
export type {
  PrimitiveRegistration,
  PrimitiveInfo,
  PrimitiveQuery,
  PrimitiveRegistryOptions,
} from './core/registry.js';
export {
  PointRole,
  PointScope,
  TerminationMethod,
  Direction,
  DIRECTION_STEPS,
  DEFAULT_PRIMITIVE,
  normalizePoint,
  parseDirection,
} from './fabric/point.js';
export type { PointCharacteristics, PointRegistration, PointRegistrationInput } from './fabric/point.js';
export { Endpoint } from './fabric/endpoint.js';
export type {
  PointMessage,
  PointSendOptions,
  PointReceiveOptions,
  ListEntry,
  EndpointOptions,
} from './fabric/endpoint.js';
export type { PointContext, PointMain } from './fabric/host.js';
export { Fabric, Link, CALLER } from './fabric/fabric.js';
export type {
  FabricOptions,
  FabricEvent,
  ConnectOptions,
  DisconnectOptions,
  InstanceInfo,
  LinkInfo,
  InstanceState,
  LinkState,
  BrokerEntry,
} from './fabric/fabric.js';
export { Agent, AGENT_OPS } from './fabric/agent.js';
export type { AgentTarget, AgentEvent, AgentOp } from './fabric/agent.js';
export type { ExternalEnd } from './fabric/fabric.js';
export { Daemon, DAEMON_FILES, isAlive } from './control/daemon.js';
export type { DaemonOptions, ContainerInfo } from './control/daemon.js';
export { Peering, Conduit, controlAddress, checkPeerEndpoint } from './remote/peering.js';
export type {
  PeeringOptions,
  PeerConfig,
  PeerInfo,
  ConduitStats,
  RemoteLinkInfo,
  PeeringHost,
} from './remote/peering.js';
export { DaemonClient, ClientLink } from './control/client.js';
export type { DaemonClientOptions } from './control/client.js';
export { ControlConnection } from './control/connection.js';
export type { RequestHandler } from './control/connection.js';
export {
  encodeControl,
  encodeControlBody,
  decodeControl,
  ControlDecoder,
  PROTOCOL_PROTO,
  PROTOCOL_VERSION,
  MAX_CONTROL_FRAME,
} from './control/protocol.js';
export type { ControlMessage } from './control/protocol.js';
export { defaultDaemonDir, ensurePrivateDir } from './core/paths.js';
export { encodeEnvelope, decodeEnvelope, ENVELOPE_PROTO, ENVELOPE_TYPE } from './remote/envelope.js';
export type { Envelope } from './remote/envelope.js';
export {
  generateKeyPair,
  saveKeyPair,
  loadKeyPair,
  AllowList,
  isCurveKey,
  z85Encode,
  z85Decode,
  zapAuthenticator,
  ZapAuthenticator,
} from '../primitives/zeromq/keys.js';
export type { CurveKeyPair, RefusedPeer, ZapPolicy } from '../primitives/zeromq/keys.js';
/** The directory; its whole API (query compiler, migrations) is also at `amix/directory`. */
export {
  Directory,
  Visibility,
  DIRECTORY_FILE,
  parsePointId,
  comparePointIds,
  parseQuery,
  evaluateQuery,
} from './directory/index.js';
export type {
  Principal,
  PointView,
  PointUpdate,
  AttributeValue,
  Attribute,
  AttributeInput,
  QueryOptions,
  QueryResult,
  DirectoryPeer,
  DirectoryOptions,
  QueryNode,
  PointRegistration as DirectoryPointRegistration,
  PointRecord as DirectoryPointRecord,
} from './directory/index.js';
