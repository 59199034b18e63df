// DCM rules (seed 002 ¶81-87, ¶222, ¶233): the rules-file syntax, merging by name, the reserved rules.
import t from 'tap';
import { Dcm, RuleSet, parseRules } from '../dist/lib/internal.js';

const colon = (tok: string) => tok === ':' || tok === '!';

t.test('the syntax: rule lines, tab-indented methods, attributes, comments', async (t) => {
  const specs = parseRules(
    '# the program\nMAIN: A B   # trailing comment\n\techo one\n\n\techo two\nA.method = FUNCTION\nB ! \n',
    'p.rules',
    colon,
  );
  t.same(specs, [
    { name: 'MAIN', operator: ':', prerequisites: ['A', 'B'], where: 'p.rules:2', method: ['echo one', 'echo two'] },
    { name: 'A', attributes: { method: 'FUNCTION' }, where: 'p.rules:6' },
    { name: 'B', operator: '!', prerequisites: [], where: 'p.rules:7' },
  ]);
  t.same(parseRules('libspell.so.path = ./lib\n', 'f', colon), [
    { name: 'libspell.so', attributes: { path: './lib' }, where: 'f:1' },
  ]);
});

t.test('syntax errors name file, line and column', async (t) => {
  const at = (text: string) => {
    try {
      parseRules(text, 'x.rules', colon);
    } catch (err) {
      return (err as { code: string; details: unknown }).details;
    }
    return undefined;
  };
  t.match(at('\techo\n'), { file: 'x.rules', line: 1, column: 1 }, 'a method before any rule');
  t.match(at('MAIN: A\n  echo\n'), { line: 2, column: 1 }, 'spaces instead of a tab');
  t.match(at('MAIN A\n'), { line: 1, column: 6 }, 'no operator');
  t.match(at('MAIN ?? A\n'), { line: 1, column: 6 }, 'an unknown operator');
  t.match(at('MAIN: A $B\n'), { line: 1, column: 9 }, 'a bad prerequisite');
  t.match(at('MAIN = x\n'), { line: 1, column: 1 }, 'an attribute without a rule part');
});

t.test('parts of a rule merge; conflicting parts are refused', async (t) => {
  const rules = new RuleSet();
  rules.add({ name: 'A', prerequisites: ['B'] });
  rules.add({ name: 'A', prerequisites: ['C', 'B'], attributes: { x: '1' } });
  rules.add({ name: 'A', method: ['true'], attributes: { x: '2' } });
  t.same(rules.get('A'), {
    name: 'A',
    operator: ':',
    prerequisites: ['B', 'C'],
    attributes: { x: '2' },
    method: ['true'],
  });
  t.throws(() => rules.add({ name: 'A', method: ['false'] }), {
    code: 'AMIX_ERR_INVALID_ARG',
    message: /method already/,
  });
  t.throws(() => rules.add({ name: 'A', operator: '!' }), { message: /operator : already/ });
  for (const r of ['SHARED.OBJECT', 'THREAD', 'SHELL'])
    t.throws(() => rules.add({ name: r }), { message: /reserved binding rule/ }, `${r} cannot be redefined`);
  t.throws(() => rules.add({ name: 'bad name' }), { code: 'AMIX_ERR_INVALID_ARG' });
  const dcm = await Dcm.create();
  t.throws(() => dcm.loadText('MAIN: A\nMAIN:\n\ttrue\nMAIN:\n\tfalse\n', 'm.rules'), {
    message: /m\.rules:4: rule MAIN has a method already \(m\.rules:2\)/,
    details: { file: 'm.rules', line: 4 },
  });
  t.throws(() => dcm.addRule({ name: 'X', operator: '=>' }), { code: 'AMIX_ERR_INVALID_ARG' });
});
