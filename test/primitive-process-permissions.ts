// Where queueConditionProcess puts its sockets: a runtime directory closed
// to everyone else (0700), socket files 0600, stale sockets of dead
// processes removed, a live one never taken over.
import t from 'tap';
import { chmodSync, existsSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrimitiveRegistry } from '../dist/lib/index.js';
import { runtimeDirectory } from '../dist/primitives/queueConditionProcess.js';
import { spawnPeer, tempDir } from './fixtures/process-helpers.js';

if (process.platform === 'win32') {
  t.comment('warning: socket file permissions do not apply to Windows named pipes; skipped');
} else {
  t.test('a missing runtime directory is created 0700 and the socket file is 0600', async (t) => {
    const runtimeDir = join(tempDir(t), 'nested', 'run');
    const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
    t.teardown(() => reg.close());
    const rx = await reg.open('queueConditionProcess');
    t.teardown(() => rx.destroy());
    t.equal(statSync(runtimeDir).mode & 0o777, 0o700, 'runtime directory is 0700');
    const path = (rx.address as { path: string }).path;
    t.ok(path.startsWith(runtimeDir), 'the socket lives in the runtime directory');
    const st = statSync(path);
    t.ok(st.isSocket(), 'the address is a Unix socket');
    t.equal(st.mode & 0o777, 0o600, 'socket file is 0600');
    t.same(JSON.parse(JSON.stringify(rx.address)), rx.address, 'the address is JSON-serialisable');
    await rx.close();
    t.notOk(existsSync(path), 'closing removes the socket file');
  });

  t.test('the default runtime directory is private to this user', async (t) => {
    const dir = await runtimeDirectory();
    const st = statSync(dir);
    t.equal(st.mode & 0o777, 0o700, `${dir} is 0700`);
    if (process.getuid) t.equal(st.uid, process.getuid(), 'and owned by this user');
  });

  t.test('a runtime directory open to others, or a symlink, is refused with AMIX_ERR_INVALID_ARG', async (t) => {
    const base = tempDir(t);
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir: open } });
    t.teardown(() => reg.close());
    await t.rejects(reg.open('queueConditionProcess'), { code: 'AMIX_ERR_INVALID_ARG' }, 'a 0755 directory is refused');
    const link = join(base, 'link');
    const target = join(base, 'target');
    mkdirSync(target, { mode: 0o700 });
    symlinkSync(target, link);
    await t.rejects(runtimeDirectory(link), { code: 'AMIX_ERR_INVALID_ARG' }, 'a symlink is refused');
  });

  t.test(
    'a stale socket left by a killed process is removed; a live one is refused with AMIX_ERR_DUPLICATE',
    async (t) => {
      const runtimeDir = tempDir(t);
      const socketPath = join(runtimeDir, 'well-known.sock');
      const peer = spawnPeer(t, { role: 'receive', runtimeDir, socketPath });
      await peer.next((m) => 'address' in m, 'the child listens');
      const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
      t.teardown(() => reg.close());
      await t.rejects(
        reg.open('queueConditionProcess', { socketPath } as object),
        { code: 'AMIX_ERR_DUPLICATE' },
        'a live listener keeps its path',
      );
      peer.proc.kill('SIGKILL');
      await peer.exited;
      t.ok(existsSync(socketPath), 'the killed process left its socket file behind');
      const rx = await reg.open('queueConditionProcess', { socketPath } as object);
      t.teardown(() => rx.destroy());
      t.equal((rx.address as { path: string }).path, socketPath, 'the stale socket was replaced by a live one');
      const tx = await reg.open('queueConditionProcess', { address: rx.address });
      t.teardown(() => tx.destroy());
      await tx.send(Buffer.from('hi'));
      t.equal(Buffer.from(await rx.receive()).toString(), 'hi', 'and it works');
      const notSocket = join(runtimeDir, 'file');
      writeFileSync(notSocket, 'x');
      await t.rejects(
        reg.open('queueConditionProcess', { socketPath: notSocket } as object),
        { code: 'AMIX_ERR_INVALID_ARG' },
        'a path that is not a socket is never removed',
      );
    },
  );

  t.test('sockets named for dead processes are swept from the runtime directory', async (t) => {
    const runtimeDir = tempDir(t);
    const peer = spawnPeer(t, { role: 'receive', runtimeDir });
    const { address } = await peer.next<{ address: { path: string } }>((m) => 'address' in m, 'the child listens');
    peer.proc.kill('SIGKILL');
    await peer.exited;
    t.ok(existsSync(address.path), 'the dead child left its socket file');
    const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
    t.teardown(() => reg.close());
    const rx = await reg.open('queueConditionProcess');
    t.teardown(() => rx.destroy());
    t.notOk(existsSync(address.path), 'the next receiving end in this directory removed it');
  });

  t.test('attaching to an address nobody listens on rejects with AMIX_ERR_PEER_LOST', async (t) => {
    const runtimeDir = tempDir(t);
    const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
    t.teardown(() => reg.close());
    await t.rejects(
      reg.open('queueConditionProcess', { address: { path: join(runtimeDir, 'nobody.sock') } }),
      { code: 'AMIX_ERR_PEER_LOST' },
      'nothing there',
    );
    await t.rejects(
      reg.open('queueConditionProcess', { address: { path: 42 } }),
      { code: 'AMIX_ERR_INVALID_ARG' },
      'a path must be a string',
    );
  });
}
