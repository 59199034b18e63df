/**
 * The Thread Directory Service: a persistent, queryable directory of
 * primitives and points with unique identifiers, private attributes, a
 * query language and federation through peer directories.
 *
 * @module
 */
export { Directory } from './directory.js';
export { PointRole, Visibility, DIRECTORY_FILE } from './types.js';
export { parsePointId, comparePointIds } from './ids.js';
export type {
  Principal,
  PointRecord,
  AttributeValue,
  Attribute,
  AttributeInput,
  PointRegistration,
  PointView,
  PointUpdate,
  ForwardOptions,
  ResolveOptions,
  QueryOptions,
  QueryResult,
  DirectoryPeer,
  DirectoryOptions,
  DirectoryChange,
  ReplicaPoint,
} from './types.js';
export {
  parseQuery,
  optimizeQuery,
  compileQuery,
  attributeCondition,
  isAttributeLeaf,
  evaluateQuery,
  isAttributeName,
  globOf,
  compareCodePoints,
  BUILTIN_FIELDS,
  QUERY_KEYWORDS,
  ComparisonOperator,
  MAX_QUERY_LENGTH,
  MAX_QUERY_DEPTH,
} from './query.js';
export type {
  BuiltinField,
  QueryLiteral,
  QueryNode,
  QueryLeaf,
  QueryComparison,
  QueryPrincipal,
  CompiledQuery,
  CompileOptions,
  QuerySubject,
} from './query.js';
export { MIGRATIONS, migrate } from './schema.js';
export type { Migration, MigrationReport } from './schema.js';
