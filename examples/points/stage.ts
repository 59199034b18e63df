// One pipeline stage. The same code runs as a thread point or as a process
// point: only its registration differs (seed paragraph 58, "an intraprocess
// communication point to be treated as an interprocess communication point").
import type { PointContext } from '../../lib/index.js';

/** Transform each message by `point.data.op` and pass it on to every receiver on the sender list. */
export default async function stage(point: PointContext): Promise<void> {
  const op = (point.data as { op?: string } | undefined)?.op ?? 'none';
  for await (const m of point) {
    let text = Buffer.from(m.data).toString();
    if (op === 'upper') text = text.toUpperCase();
    if (op === 'exclaim') text = `${text}! (via ${point.instance}, pid ${process.pid})`;
    await point.send(Buffer.from(text));
  }
}
