/**
 * The binding methods the DCM adds to its Binding Service at start (seed 002
 * ¶471-473): SharedLibrary and SharedObject. JavaScript has no `.so`: a
 * shared library is an ES module, and a shared object is one of its
 * exported functions. A `NAME.so` rule name is transformed to `NAME.mjs`,
 * so the seed's rules (`libspell.so`) run unchanged over a module of that
 * name. This module is the location both are registered with: the service
 * imports it on first use, like any other method.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AmixError, ErrorCode } from '../../core/errors.js';
import type { BindingMethod } from '../binding/types.js';

/** Where these methods are registered from. */
export const DCM_BINDINGS_LOCATION = new URL('./bindings.js', import.meta.url).href;

/**
 * SharedLibrary (¶472): a name ending `.so`, `.mjs`, `.js` or `.cjs` (or
 * `library:PATH`) is a module file, relative to the rules file's directory.
 * `.so` becomes `.mjs`. Has a pattern: a library name not found is BOUND but
 * not found, and the rule fails.
 */
export const SharedLibrary: BindingMethod = {
  // A name aimed at another method (object:..., thread:...) is not a library, whatever it ends with.
  patternMatching: /^library:|^(?!(?:file|shell|data|function|thread|process|object):).*\.(?:so|mjs|js|cjs)$/s,
  nameTransformation: (name) => name.replace(/^library:/, '').replace(/\.so$/, '.mjs'),
  async locate(name, ctx) {
    const path = isAbsolute(name) ? name : resolve(ctx.baseDir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return {
      kind: 'library',
      path,
      mtimeMs: async () => (await stat(path).catch(() => undefined))?.mtimeMs,
    };
  },
  status: async (e) => ({ path: e.path as string, mtimeMs: (await stat(e.path as string)).mtimeMs }),
};

/**
 * SharedObject (¶473): `object:SYMBOL@PATH`, the exported function SYMBOL
 * of the library module at PATH. Locate opens the module (import) and
 * checks the export is a function; invoking calls it with the rule's
 * argument.
 */
export const SharedObject: BindingMethod = {
  patternMatching: /^object:[^@]+@.+$/s,
  nameTransformation: (name) => name.slice('object:'.length),
  async locate(name) {
    const at = name.indexOf('@');
    const symbol = name.slice(0, at);
    const path = name.slice(at + 1);
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    } catch (err) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_HANDLER_FAILED,
        `shared library ${path} did not load: ${(err as Error).message}`,
        {
          cause: err,
          details: { module: path, request: 'load' },
        },
      );
    }
    const fn = mod[symbol];
    if (typeof fn !== 'function') return undefined;
    return { kind: 'object', symbol, path, invoke: async (o) => (fn as (a: unknown) => unknown)(o?.arg) };
  },
  status: (e) => ({ symbol: e.symbol as string, path: e.path as string }),
};
