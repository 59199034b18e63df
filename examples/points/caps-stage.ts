// A pipeline stage that CAPS can replace live: it runs the CAPS AMS loop
// (runAms), so CAPS can stop it between two messages, hand what it had not
// taken to its replacement, and carry its state (a count) across.
import { runAms, type PointContext } from '../../lib/index.js';

/** Prefix each message with `point.data.tag` and the running count. */
export default function capsStage(point: PointContext): Promise<void> {
  const tag = (point.data as { tag?: string } | undefined)?.tag ?? point.name;
  let count = 0;
  return runAms(point, {
    process: (m) => Buffer.from(`${tag}#${++count}: ${Buffer.from(m.data).toString()}`),
    dump: () => ({ count }),
    load: (state) => {
      count = (state as { count: number }).count;
    },
  });
}
