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
export { WaitList } from './core/waitList.js';
export type { Waiter, WaitOptions } from './core/waitList.js';
export { Lifecycle } from './core/lifecycle.js';
export type { Closable, Destroyable, LifecycleState } from './core/lifecycle.js';
export { RpcPeer, handlerTable, stringArg } from './core/rpc.js';
export { CreditReceiver, SenderWindow, ResendRing } from './core/credit.js';
export { FrameDecoder, FrameWriter, encodeFrame, PROCESS_LAYOUT, CONTROL_LAYOUT } from './core/framing.js';
export {
  amixError,
  linkClosedError,
  peerLostError,
  protocolError,
  badFrameError,
  bufferTooSmallError,
  timeoutError,
  asAmixError,
  describe,
  errorToPlain,
  errorFromPlain,
  abortError,
  invalidArg,
} from './core/errors.js';
export type { ErrorDetails } from './core/errors.js';
export type { DaemonOps, DaemonOp, DaemonEvents, DaemonEvent, DaemonStats, DaemonStatus } from './control/ops.js';
export { TRANSITIONS, isAllowed } from './core/module.js';
export { REQUIRED_OPERATIONS, OPTIONAL_OPERATIONS } from './core/primitive.js';
export { assertRegistration, assertPrimitive, checkChannelOptions, importSpecifier } from './core/registry.js';
export { conformanceCases, runCase, runConformance, loadPrimitiveTarget } from './core/conformance.js';
export type {
  ConformanceCase,
  ConformanceContext,
  ConformanceTarget,
  ConformanceResult,
  ConformanceReport,
  RunConformanceOptions,
  ErrorPattern,
} from './core/conformance.js';
export { DEFAULT_PRIMITIVE, normalizePoint, parseDirection } from './fabric/point.js';
export { Agent, AGENT_OPS } from './fabric/agent.js';
export type { AgentTarget, AgentEvent, AgentOp } from './fabric/agent.js';
export {
  SWITCH_DATA,
  SWITCH_ROUTES,
  SWITCH_MAX_HOPS,
  encodeSwitchData,
  encodeSwitchRoutes,
  decodeSwitchFrame,
  frameDestination,
  LearnedRoutes,
  isSwitchPoint,
} from './fabric/switchFrame.js';
export { Switch, runSwitch } from './fabric/switchPoint.js';
export { SWITCH_SEQ, SWITCH_ACK, TRUNK_LOCATION, TRUNK_WINDOW, TrunkFlows } from './fabric/switchTrunk.js';
export type { TrunkSnapshot } from './fabric/switchTypes.js';
export { TrunkPoint, trunkOptions } from './remote/trunk/trunkPoint.js';
export type { TrunkOptions } from './remote/trunk/trunkPoint.js';
export { BatchWriter, decodeTrunkFrame, encodeHello, TRUNK_BATCH, TRUNK_HELLO } from './remote/trunk/trunkFrame.js';
export type { SwitchOptions } from './fabric/switchPoint.js';
export { SwitchControl } from './fabric/switches.js';
export type { ExternalEnd } from './fabric/fabric.js';
export { Daemon, DAEMON_FILES, isAlive } from './control/daemon.js';
export { MetricsEndpoint, parseMetricsAddress, isLoopbackHost, METRICS } from './control/metrics.js';
export type { MetricsOptions, MetricsSource } from './control/metrics.js';
export type { DaemonOptions, ContainerInfo } from './control/daemon.js';
export { Peering, Conduit, controlAddress, checkPeerEndpoint, helloText } from './remote/peering.js';
export type {
  PeeringOptions,
  PeerConfig,
  PeerInfo,
  ConduitStats,
  RemoteLinkInfo,
  PeeringHost,
} from './remote/peering.js';
export { ControlConnection, hangUp } from './control/connection.js';
export type { RequestHandler, ControlConnectionOptions } from './control/connection.js';
export { ControlGuard, RateLimitedLog, resolveLimits, parseLimitFlags, CONTROL_LIMIT_KEYS } from './control/guard.js';
export type { ControlLimits, ControlGuardStats } from './control/guard.js';
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
export { ensurePrivateDir, createPrivateFile, checkPrivateFile } from './core/paths.js';
export type { PrincipalInfo } from './control/principals.js';
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
  proveKey,
  checkKeyProof,
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
export { ERROR_STATE, MAX_STATE_CONCURRENCY, normalizeMachine } from './services/stateMachine/definition.js';
export { Neem } from './services/nee/manager.js';
export type { NeemOptions, CreateOptions as NeeCreateOptions, NeeInfo } from './services/nee/manager.js';
export type { NeeRun, RunExit, RunOptions as NeeRunOptions } from './services/nee/run.js';
export { probeAttributes, readNeeConfig } from './services/nee/attributes.js';
export type { AttributeSet, SystemEntry, NeeConfig } from './services/nee/attributes.js';
export { DEFAULT_BINDING_CONFIG, parseBindingConfig, readBindingConfig } from './services/binding/config.js';
export { BindingState, BINDING_OPERATIONS } from './services/binding/types.js';
export type {
  BindingApplication,
  BindingContext,
  BindingReport,
  BindingStatus,
  BoundEntity,
  EntryInfo,
  InvokeOptions,
  MethodInfo,
  RequestOptions,
  ThreadProcedure,
} from './services/binding/types.js';
export { RuleSet, parseRules, FLOW_RULES, BINDING_RULES } from './services/dcm/rules.js';
export type { Rule, RuleSpec } from './services/dcm/rules.js';
export { TIME_VALUE, ALWAYS } from './services/dcm/operators.js';
export type { DcmOperator, OperatorInput } from './services/dcm/operators.js';
export { readState, writeState } from './services/dcm/state.js';
export type { DcmState } from './services/dcm/state.js';
// CAPS (docs/caps.md): the amixd service, the request checks and store limits, the AMS loop's service name.
export { capsService, CAPS_STORE_FILE, CAPSCF_FILE } from './services/caps/service.js';
export { checkRequest, DEFERRABLE, MAX_STORE_BYTES, MAX_STORE_LINE, MIN_EVERY_MS } from './services/caps/defer.js';
export { AMS_SERVICE } from './services/caps/ams.js';
export type { Located } from './services/caps/caps.js';
