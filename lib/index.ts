/**
 * amix: an access-method-independent exchange for Node.js. This is what an
 * application uses: the {@link Fabric} with its points and links, the
 * {@link PrimitiveRegistry} and {@link Channel} for primitives, the module
 * model's {@link Container}, the {@link DaemonClient} for `amixd`, and the
 * errors. Nothing here loads a native addon: ZeroMQ is imported when a
 * `zeromq` channel is first opened, SQLite when a directory is first opened.
 *
 * Elsewhere: `amix/daemon` (embed amixd), `amix/directory` (the directory
 * service), `amix/primitives/<name>` (a primitive module itself) and
 * `amix/internal` (codecs, peering, keys and helpers, for tools and tests;
 * no stability promise).
 *
 * @module
 */
export { AmixError, ErrorCode, isAmixError } from './core/errors.js';
export type { AmixErrorOptions, PlainError } from './core/errors.js';
export { Container, ModuleState, ModuleRequest } from './core/module.js';
export type {
  ModuleHandlers,
  ModuleContext,
  ModuleRecord,
  ContainerEvent,
  ContainerOptions,
  Transition,
} from './core/module.js';
export { Scope, DiscardPolicy, IdleStrategy } from './core/primitive.js';
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
export { PrimitiveRegistry, BUILTIN_PRIMITIVES } from './core/registry.js';
export type {
  PrimitiveRegistration,
  PrimitiveInfo,
  PrimitiveQuery,
  PrimitiveRegistryOptions,
} from './core/registry.js';
export { PointRole, PointScope, TerminationMethod, Direction, DIRECTION_STEPS } from './fabric/point.js';
export type { PointCharacteristics, PointRegistration, PointRegistrationInput } from './fabric/point.js';
export { Endpoint, RECONNECT_FROM } from './fabric/endpoint.js';
export type {
  PointMessage,
  PointSendOptions,
  PointReceiveOptions,
  ListEntry,
  EndpointOptions,
} from './fabric/endpoint.js';
export type { PointContext, PointMain } from './fabric/host.js';
export { SWITCH_LOCATION } from './fabric/switchFrame.js';
export { TRUNK_LOCATION } from './fabric/switchTrunk.js';
export type {
  SwitchSnapshot,
  SwitchRouteInfo,
  SwitchPortInfo,
  SwitchSummary,
  TrunkSnapshot,
  TrunkSummary,
} from './fabric/switches.js';
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
  CreateOptions,
} from './fabric/fabric.js';
export type { HostPoolInfo, IdleHostInfo } from './fabric/types.js';
export { DaemonClient, ClientLink } from './control/client.js';
export type { DaemonClientOptions } from './control/client.js';
export { defaultDaemonDir } from './core/paths.js';
export { StateMachine } from './services/stateMachine/machine.js';
export type {
  MachineOptions,
  DatumResult,
  DatumRun,
  TransitionEvent,
  MachineStats,
} from './services/stateMachine/machine.js';
export type { MachineDefinition, StateDefinition, StateFunction } from './services/stateMachine/definition.js';
// The seed's higher services, in process: the Binding Service and Dynamic Configuration Management (docs/binding.md, docs/dcm.md).
export { BindingService } from './services/binding/service.js';
export type { BindingServiceOptions } from './services/binding/service.js';
export type { BindingMethod, BindingQuery, MethodRegistration } from './services/binding/types.js';
export { Dcm } from './services/dcm/dcm.js';
export type { DcmOptions, DcmRunOptions, DcmResult } from './services/dcm/dcm.js';
// CAPS, the Configurable Application Process Service (docs/caps.md): AMSs loaded, replaced, inserted and extracted live.
export { Caps, runAms } from './services/caps/index.js';
export type {
  AmsHandlers,
  AmsInfo,
  AmsState,
  BetweenOptions,
  CapsEvent,
  CapsOptions,
  CapsQuery,
  CapsRequest,
  DeferredInfo,
  ExecuteOptions,
  LoadOptions,
  MapArea,
  ReplaceOptions,
} from './services/caps/index.js';
