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
export { PrimitiveRegistry, BUILTIN_PRIMITIVES, assertRegistration, assertPrimitive, checkChannelOptions } from './registry.js';
export type { PrimitiveRegistration, PrimitiveInfo, PrimitiveQuery, PrimitiveRegistryOptions } from './registry.js';
