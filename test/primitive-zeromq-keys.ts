// CURVE key handling: generation, Z85, key files at mode 0600, allow-lists.
import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AllowList,
  checkKeyProof,
  proveKey,
  generateKeyPair,
  isCurveKey,
  loadKeyPair,
  saveKeyPair,
  z85Decode,
  z85Encode,
} from '../dist/primitives/zeromq/keys.js';

const dir = mkdtempSync(join(tmpdir(), 'amix-keys-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('Z85 matches the reference vector of the ZeroMQ RFC 32', async (t) => {
  const bytes = new Uint8Array([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
  t.equal(z85Encode(bytes), 'HelloWorld', 'encodes the RFC example');
  t.same([...z85Decode('HelloWorld')], [...bytes], 'decodes it back');
  t.throws(() => z85Decode('Hello~orld'), { code: 'AMIX_ERR_INVALID_ARG' }, 'a character outside the alphabet');
  t.throws(() => z85Encode(new Uint8Array(3)), { code: 'AMIX_ERR_INVALID_ARG' }, 'a length not a multiple of 4');
});

t.test('generated key pairs are distinct 40-character Z85 keys', async (t) => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  t.ok(isCurveKey(a.publicKey) && isCurveKey(a.secretKey), 'both keys are well-formed');
  t.not(a.publicKey, b.publicKey, 'two pairs differ');
  t.equal(z85Decode(a.publicKey).length, 32, 'a key is 32 bytes');
  t.notOk(isCurveKey('short'), 'a short string is not a key');
});

t.test('a key file is written 0600 and read back', async (t) => {
  const file = join(dir, 'sub', 'node.key');
  const pair = generateKeyPair();
  await saveKeyPair(file, pair);
  t.equal(statSync(file).mode & 0o777, 0o600, 'mode 0600');
  t.equal(statSync(join(dir, 'sub')).mode & 0o777, 0o700, 'directory created 0700');
  t.same(await loadKeyPair(file), pair, 'same keys');
});

t.test(
  'a key file readable by others is refused',
  { skip: process.platform === 'win32' ? 'no POSIX modes' : false },
  async (t) => {
    const file = join(dir, 'open.key');
    await saveKeyPair(file, generateKeyPair());
    chmodSync(file, 0o644);
    await t.rejects(loadKeyPair(file), { code: 'AMIX_ERR_UNAUTHORIZED' }, 'mode 0644 refused');
    const junk = join(dir, 'junk.key');
    writeFileSync(junk, '{"version":1,"publicKey":"nope"}', { mode: 0o600 });
    await t.rejects(loadKeyPair(junk), { code: 'AMIX_ERR_INVALID_ARG' }, 'not a key file');
    await t.rejects(loadKeyPair(join(dir, 'missing.key')), { code: 'AMIX_ERR_INVALID_ARG' }, 'missing file');
  },
);

t.test('an allow-list holds keys, survives a file round trip and names a bad line', async (t) => {
  const a = generateKeyPair().publicKey;
  const b = generateKeyPair().publicKey;
  const list = new AllowList([a]);
  list.add(b);
  t.ok(list.has(a) && list.has(b), 'both listed');
  t.ok(list.hasRaw(z85Decode(a)), 'a raw 32-byte key matches');
  t.notOk(list.has(generateKeyPair().publicKey), 'another key is not listed');
  const file = join(dir, 'allow');
  await list.save(file);
  t.equal(statSync(file).mode & 0o777, 0o600, 'saved 0600');
  const back = await AllowList.load(file);
  t.same([...back].sort(), [a, b].sort(), 'same keys after load');
  writeFileSync(join(dir, 'bad-allow'), `# comment\n${a}\nnot-a-key\n`);
  await t.rejects(
    AllowList.load(join(dir, 'bad-allow')),
    { code: 'AMIX_ERR_INVALID_ARG', details: { line: 3 } },
    'line 3 named',
  );
  t.throws(() => new AllowList(['x']), { code: 'AMIX_ERR_INVALID_ARG' }, 'a malformed key is refused');
});

t.test('an allow-list line may bind its key to a daemon id, one key per id', async (t) => {
  const a = generateKeyPair().publicKey;
  const b = generateKeyPair().publicKey;
  const list = new AllowList([`${a} 0123456789abcdef`, b]);
  t.equal(list.idOf(a), '0123456789abcdef', 'the id of a named key');
  t.equal(list.idOf(b), undefined, 'a bare key has none');
  t.equal(list.keyOf('0123456789abcdef'), a, 'and the key of an id');
  const file = join(dir, 'allow-ids');
  await list.save(file);
  const back = await AllowList.load(file);
  t.equal(back.idOf(a), '0123456789abcdef', 'ids survive a file round trip');
  t.ok(back.has(b), 'bare keys too');
  writeFileSync(join(dir, 'twice'), `${a} x1\n${b} x1\n`);
  await t.rejects(
    AllowList.load(join(dir, 'twice')),
    { code: 'AMIX_ERR_INVALID_ARG', details: { line: 2 } },
    'an id given to a second key is refused, line named',
  );
  writeFileSync(join(dir, 'extra'), `${a} x1 more\n`);
  await t.rejects(AllowList.load(join(dir, 'extra')), { code: 'AMIX_ERR_INVALID_ARG', details: { line: 1 } });
  t.throws(() => new AllowList([`${a} bad/id`]), { code: 'AMIX_ERR_INVALID_ARG' }, 'an id outside [A-Za-z0-9_-]');
});

t.test('a key proof checks only for the key that made it, the text it covers and the key it was made for', (t) => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  const c = generateKeyPair();
  const proof = proveKey(a, b.publicKey, 'hello as a');
  t.ok(checkKeyProof(b, a.publicKey, 'hello as a', proof), 'b checks a proof a made for it');
  t.notOk(checkKeyProof(b, a.publicKey, 'hello as c', proof), 'not for another text');
  t.notOk(checkKeyProof(c, a.publicKey, 'hello as a', proof), 'not at another key (no replay elsewhere)');
  t.notOk(checkKeyProof(b, c.publicKey, 'hello as a', proof), 'not as made by another key');
  t.notOk(checkKeyProof(b, a.publicKey, 'hello as a', 'garbage'), 'garbage never checks');
  t.notOk(checkKeyProof(b, 'not a key', 'hello as a', proof), 'nor does a malformed key');
  t.end();
});
