#!/usr/bin/env node
// amixd: the per-machine amix daemon. A thin shell over lib/daemon.ts.
import { parseArgs } from 'node:util';
import { Daemon, defaultDaemonDir, isAmixError } from '../lib/index.js';

const USAGE = `usage: amixd [--dir DIR] [--slots N] [--quiet]

Runs the amix daemon in the foreground until SIGTERM, SIGINT or "amix daemon stop".
  --dir DIR    daemon directory (socket, tokens, state); default ${defaultDaemonDir()}
               (or $AMIX_DIR)
  --slots N    containers that may be plugged in at once (default 64)
  --quiet      no log lines on stderr
  -h, --help   this help`;

let values: Record<string, string | boolean | undefined>;
try {
  ({ values } = parseArgs({ options: { dir: { type: 'string' }, slots: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
} catch (err) {
  process.stderr.write(`amixd: ${(err as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
if (values.help) { process.stdout.write(`${USAGE}\n`); process.exit(0); }
const slots = values.slots === undefined ? undefined : Number(values.slots);
if (slots !== undefined && (!Number.isSafeInteger(slots) || slots < 1)) { process.stderr.write(`amixd: --slots must be a positive integer\n`); process.exit(2); }

const daemon = new Daemon({
  ...(values.dir ? { dir: values.dir as string } : {}),
  ...(slots ? { slots } : {}),
  log: values.quiet ? () => {} : (line) => process.stderr.write(`${line}\n`),
});
try {
  await daemon.start();
} catch (err) {
  process.stderr.write(`amixd: ${isAmixError(err) ? `${err.message} (${err.code})` : (err as Error).message}\n`);
  process.exit(1);
}
let stopping = false;
const stop = (why: string) => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(values.quiet ? '' : `amixd: ${why}, stopping\n`);
  void daemon.stop().then(() => process.exit(0), (err) => { process.stderr.write(`amixd: stop failed: ${(err as Error).message}\n`); process.exit(1); });
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
daemon.on('exit', () => process.exit(0));
// The daemon stays up while its server listens; tell a parent waiting on our stdout that we are ready.
if (process.env.AMIXD_READY_FD === '1') process.stdout.write(`ready ${daemon.socketPath}\n`);
