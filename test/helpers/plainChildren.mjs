// Preloaded into every test process (.taprc node-arg), so that the processes
// a test starts (amix, amixd, point hosts, fixtures) run as users run them,
// without tap's loaders. tap puts its processinfo loader into NODE_OPTIONS of
// every child, through the listener list of process-on-spawn, and a forked
// child inherits process.execArgv, which holds tap's TypeScript, mock and
// processinfo loaders. In Node 20 each costs a hooks thread and module loads:
// about 0.45 s of CPU per process, enough to make the suite CPU-bound on two
// cores. Coverage is off, so nothing reads what processinfo would record.
const tapLoader = (arg) => arg.includes('@tapjs/') || arg.includes('plainChildren.mjs');

// fork() and the fabric's process hosts read process.execArgv when they start
// a child; this process has loaded its loaders already, so dropping them from
// the array changes only what children get.
for (let i = process.execArgv.length - 1; i >= 0; i--)
  if (tapLoader(process.execArgv[i])) process.execArgv.splice(i, 1);

// Runs after processinfo's own listener (registered by its --import, which
// comes first), so it sees and undoes what that one added.
const state = globalThis[Symbol.for('process-on-spawn@*:singletonId')];
if (state) {
  state.listeners.push((opts) => {
    const env = { ...opts.env };
    const kept = (env.NODE_OPTIONS ?? '')
      .split(/\s+/)
      .filter((a) => a && !tapLoader(a))
      .join(' ');
    if (kept) env.NODE_OPTIONS = kept;
    else delete env.NODE_OPTIONS;
    opts.env = env;
  });
}
