/**
 * Plots from the benches' `--json` output (shared/BENCH.md's shape:
 * `{ bench, conditions, rows: [{ system, size, msgsPerSec, rttP50Us, rttP99Us, ... }] }`),
 * as hand-written SVG 1.1 text: no dependency, no script, no external font,
 * readable in a browser and on GitHub. For each input file, two plots:
 *
 * - `<base>-throughput.svg`: msgs/s by message size, one line per system,
 *   both axes log scale (rows without `msgsPerSec` are left out);
 * - `<base>-latency.svg`: round-trip p50 (filled dot) and p99 (open ring)
 *   per system per size on a log y axis, the systems side by side at each
 *   size (rows without `rttP50Us`/`rttP99Us` are left out).
 *
 * `<base>` is the input's file name without `.json`. The bench's conditions
 * are the caption under each plot. Output is deterministic: the same JSON
 * gives the same bytes (no date of its own, numbers printed to fixed
 * decimals, systems in the order of their first row).
 *
 * `npm run plot -- FILE.json... [--out DIR]` (default DIR: each input's own directory)
 *
 * @module
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

/** One row of a bench's JSON output, as far as the plots read it. */
export interface PlotRow {
  system: string;
  size?: number;
  msgsPerSec?: number;
  rttP50Us?: number;
  rttP99Us?: number;
}

/** A bench's JSON output, as far as the plots read it. */
export interface BenchResult {
  bench: string;
  conditions: Record<string, unknown>;
  rows: PlotRow[];
}

/** Plot area geometry (px): its size and its left and top margins. The picture grows right (legend) and down (caption) to fit. */
const PLOT_W = 560;
const PLOT_H = 360;
const M = { left: 84, top: 48 };
/** Plot area corners: x0..x1 left to right, y0 (bottom) ..y1 (top). */
const X0 = M.left;
const X1 = M.left + PLOT_W;
const Y0 = M.top + PLOT_H;
const Y1 = M.top;
/** Line colours, one per system in order (colour-blind-safe Okabe-Ito palette, then greys). */
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#999999', '#F0E442'];
/** Point markers, so lines stay apart in greyscale too. */
const MARKERS = ['circle', 'square', 'diamond', 'triangle'] as const;

/** Escape text for SVG content and attribute values. */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A coordinate, to one decimal (fixed, so the output is byte-stable). */
function n(x: number): string {
  return x.toFixed(1);
}

/** 64 -> `64 B`, 4096 -> `4 KiB`, 1048576 -> `1 MiB`. */
export function formatBytes(b: number): string {
  if (b >= 1024 * 1024 && b % (1024 * 1024) === 0) return `${b / (1024 * 1024)} MiB`;
  if (b >= 1024 && b % 1024 === 0) return `${b / 1024} KiB`;
  return `${b} B`;
}

/** 1000 -> `1k`, 1e6 -> `1M`, 0.1 -> `0.1`: labels of log-axis decades. */
function formatDecade(x: number): string {
  if (x >= 1e9) return `${x / 1e9}G`;
  if (x >= 1e6) return `${x / 1e6}M`;
  if (x >= 1e3) return `${x / 1e3}k`;
  return String(Number(x.toPrecision(3)));
}

/** A log-10 scale over the decades that cover [lo, hi]. */
function logScale(lo: number, hi: number, px0: number, px1: number) {
  const d0 = Math.floor(Math.log10(lo));
  let d1 = Math.ceil(Math.log10(hi));
  if (d1 === d0) d1 = d0 + 1;
  const at = (v: number) => px0 + ((Math.log10(v) - d0) / (d1 - d0)) * (px1 - px0);
  const decades: number[] = [];
  for (let d = d0; d <= d1; d++) decades.push(10 ** d);
  return { at, decades };
}

/** A log-2 scale over sizes, padded by half the mean step between sizes each side (room for side-by-side points). */
function sizeScale(sizes: number[], px0: number, px1: number) {
  const lo = Math.log2(Math.min(...sizes));
  const hi = Math.log2(Math.max(...sizes));
  const pad = sizes.length > 1 ? (hi - lo) / (sizes.length - 1) / 2 : 1;
  const l0 = lo - pad;
  const l1 = hi + pad;
  return (v: number) => px0 + ((Math.log2(v) - l0) / (l1 - l0)) * (px1 - px0);
}

function marker(kind: (typeof MARKERS)[number], x: number, y: number, colour: string, filled = true): string {
  const fill = filled ? colour : '#ffffff';
  const common = `fill="${fill}" stroke="${colour}" stroke-width="1.5"`;
  switch (kind) {
    case 'circle':
      return `<circle cx="${n(x)}" cy="${n(y)}" r="3.5" ${common}/>`;
    case 'square':
      return `<rect x="${n(x - 3.5)}" y="${n(y - 3.5)}" width="7" height="7" ${common}/>`;
    case 'diamond':
      return `<polygon points="${n(x)},${n(y - 4.5)} ${n(x + 4.5)},${n(y)} ${n(x)},${n(y + 4.5)} ${n(x - 4.5)},${n(y)}" ${common}/>`;
    case 'triangle':
      return `<polygon points="${n(x)},${n(y - 4.5)} ${n(x + 4.5)},${n(y + 3.5)} ${n(x - 4.5)},${n(y + 3.5)}" ${common}/>`;
  }
}

/** The caption: the conditions as `key=value` lines of at most ~130 characters. */
function captionLines(conditions: Record<string, unknown>): string[] {
  const parts = Object.entries(conditions).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const lines: string[] = [];
  let cur = '';
  for (const p of parts) {
    const piece = p.length > 130 ? `${p.slice(0, 127)}...` : p;
    if (cur && cur.length + 2 + piece.length > 130) {
      lines.push(cur);
      cur = piece;
    } else cur = cur ? `${cur}; ${piece}` : piece;
  }
  if (cur) lines.push(cur);
  // At most 10 lines under the plot; the rest is in the JSON.
  return lines.length > 10 ? [...lines.slice(0, 9), `${lines[9]!.slice(0, 126)} ...`] : lines;
}

/** The frame shared by both plots: header, axes with gridlines and labels, legend, caption. */
function frame(opts: {
  title: string;
  xLabel: string;
  yLabel: string;
  sizes: number[];
  x: (v: number) => number;
  y: ReturnType<typeof logScale>;
  legend: Array<{ name: string; style: number }>;
  conditions: Record<string, unknown>;
  body: string[];
  legendNote?: string[];
}): string {
  const x0 = X0;
  const x1 = X1;
  const y0 = Y0;
  const y1 = Y1;
  const caption = captionLines(opts.conditions);
  // Legend width from its longest line (~7 px a character at 12 px), so long system names are not cut off.
  const longest = Math.max(
    0,
    ...opts.legend.map((l) => l.name.length),
    ...(opts.legendNote ?? []).map((l) => l.length),
  );
  const W = x1 + 60 + Math.ceil(longest * 7);
  const H = y0 + 70 + caption.length * 13;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<title>${esc(opts.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(
    `<text x="${(x0 + x1) / 2}" y="26" text-anchor="middle" font-size="16" font-weight="bold">${esc(opts.title)}</text>`,
  );
  // Gridlines and tick labels.
  out.push('<g stroke="#dddddd" stroke-width="1">');
  for (const d of opts.y.decades)
    out.push(`<line x1="${x0}" y1="${n(opts.y.at(d))}" x2="${x1}" y2="${n(opts.y.at(d))}"/>`);
  for (const s of opts.sizes) out.push(`<line x1="${n(opts.x(s))}" y1="${y0}" x2="${n(opts.x(s))}" y2="${y1}"/>`);
  out.push('</g>');
  out.push('<g fill="#333333">');
  for (const d of opts.y.decades)
    out.push(`<text x="${x0 - 6}" y="${n(opts.y.at(d) + 4)}" text-anchor="end">${esc(formatDecade(d))}</text>`);
  for (const s of opts.sizes)
    out.push(`<text x="${n(opts.x(s))}" y="${y0 + 18}" text-anchor="middle">${esc(formatBytes(s))}</text>`);
  out.push('</g>');
  out.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#333333"/>`);
  out.push(`<text x="${(x0 + x1) / 2}" y="${y0 + 40}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(
    `<text x="20" y="${(y0 + y1) / 2}" text-anchor="middle" transform="rotate(-90 20 ${(y0 + y1) / 2})">${esc(opts.yLabel)}</text>`,
  );
  out.push(...opts.body);
  // Legend, right of the plot area.
  out.push('<g>');
  opts.legend.forEach(({ name, style }, i) => {
    const ly = y1 + 10 + i * 20;
    const c = COLOURS[style % COLOURS.length]!;
    out.push(`<line x1="${x1 + 14}" y1="${ly}" x2="${x1 + 38}" y2="${ly}" stroke="${c}" stroke-width="2"/>`);
    out.push(marker(MARKERS[style % MARKERS.length]!, x1 + 26, ly, c));
    out.push(`<text x="${x1 + 44}" y="${ly + 4}">${esc(name)}</text>`);
  });
  (opts.legendNote ?? []).forEach((line, i) => {
    out.push(`<text x="${x1 + 14}" y="${y1 + 24 + (opts.legend.length + i) * 20}" fill="#333333">${esc(line)}</text>`);
  });
  out.push('</g>');
  out.push(`<g font-size="10" fill="#555555">`);
  caption.forEach((line, i) => {
    out.push(`<text x="12" y="${y0 + 62 + i * 13}">${esc(line)}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * The systems of `rows` in the order of their first row, each with its style
 * (colour and marker) index: its position among all the result's systems, so
 * a system looks the same in both plots of one result.
 */
function systemsOf(result: BenchResult, rows: PlotRow[]): Array<{ name: string; style: number }> {
  const all: string[] = [];
  for (const r of result.rows) if (!all.includes(r.system)) all.push(r.system);
  return all.filter((name) => rows.some((r) => r.system === name)).map((name) => ({ name, style: all.indexOf(name) }));
}

function sortedSizes(rows: PlotRow[]): number[] {
  return [...new Set(rows.map((r) => r.size!))].sort((a, b) => a - b);
}

/** Plot (1): throughput by message size, log-log, a line per system. */
export function throughputSvg(result: BenchResult): string {
  const rows = result.rows.filter(
    (r) => typeof r.size === 'number' && r.size > 0 && typeof r.msgsPerSec === 'number' && r.msgsPerSec > 0,
  );
  if (rows.length === 0) throw new Error(`plot: ${result.bench} has no rows with size and msgsPerSec`);
  const systems = systemsOf(result, rows);
  const sizes = sortedSizes(rows);
  const vals = rows.map((r) => r.msgsPerSec!);
  const x = sizeScale(sizes, X0, X1);
  const y = logScale(Math.min(...vals), Math.max(...vals), Y0, Y1);
  const body: string[] = [];
  systems.forEach(({ name: system, style }) => {
    const c = COLOURS[style % COLOURS.length]!;
    const pts = rows
      .filter((r) => r.system === system)
      .sort((a, b) => a.size! - b.size!)
      .map((r) => [x(r.size!), y.at(r.msgsPerSec!)] as const);
    body.push(`<g><title>${esc(system)}</title>`);
    body.push(
      `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([px, py]) => `${n(px)},${n(py)}`).join(' ')}"/>`,
    );
    for (const [px, py] of pts) body.push(marker(MARKERS[style % MARKERS.length]!, px, py, c));
    body.push('</g>');
  });
  return frame({
    title: `${result.bench}: throughput by message size`,
    xLabel: 'message size (bytes, log scale)',
    yLabel: 'throughput (messages/s, log scale)',
    sizes,
    x,
    y,
    legend: systems,
    conditions: result.conditions,
    body,
  });
}

/** Plot (2): round-trip p50 (filled) and p99 (open) per system per size, log y, systems side by side. */
export function latencySvg(result: BenchResult): string {
  const rows = result.rows.filter(
    (r) =>
      typeof r.size === 'number' &&
      r.size > 0 &&
      typeof r.rttP50Us === 'number' &&
      r.rttP50Us > 0 &&
      typeof r.rttP99Us === 'number' &&
      r.rttP99Us > 0,
  );
  if (rows.length === 0) throw new Error(`plot: ${result.bench} has no rows with size, rttP50Us and rttP99Us`);
  const systems = systemsOf(result, rows);
  const sizes = sortedSizes(rows);
  const vals = rows.flatMap((r) => [r.rttP50Us!, r.rttP99Us!]);
  const x = sizeScale(sizes, X0, X1);
  const y = logScale(Math.min(...vals), Math.max(...vals), Y0, Y1);
  // Side by side within ~60% of the distance between neighbouring sizes.
  const step = sizes.length > 1 ? x(sizes[1]!) - x(sizes[0]!) : PLOT_W / 2;
  const slot = (step * 0.6) / Math.max(1, systems.length);
  const body: string[] = [];
  systems.forEach(({ name: system, style }, i) => {
    const c = COLOURS[style % COLOURS.length]!;
    const dx = (i - (systems.length - 1) / 2) * slot;
    const kind = MARKERS[style % MARKERS.length]!;
    body.push(`<g><title>${esc(system)}</title>`);
    for (const r of rows.filter((q) => q.system === system).sort((a, b) => a.size! - b.size!)) {
      const px = x(r.size!) + dx;
      const p50 = y.at(r.rttP50Us!);
      const p99 = y.at(r.rttP99Us!);
      body.push(`<line x1="${n(px)}" y1="${n(p50)}" x2="${n(px)}" y2="${n(p99)}" stroke="${c}" stroke-width="2"/>`);
      body.push(marker(kind, px, p50, c, true));
      body.push(marker(kind, px, p99, c, false));
    }
    body.push('</g>');
  });
  return frame({
    title: `${result.bench}: round-trip latency p50 and p99 by message size`,
    xLabel: 'message size (bytes, log scale)',
    yLabel: 'round trip (microseconds, log scale)',
    sizes,
    x,
    y,
    legend: systems,
    legendNote: ['filled: p50, open: p99', 'line: p50 to p99'],
    conditions: result.conditions,
    body,
  });
}

/** Read and check one bench JSON file; a clear error when it is not of the shape. */
export function readResult(file: string): BenchResult {
  const data = JSON.parse(readFileSync(file, 'utf8')) as Partial<BenchResult>;
  if (typeof data !== 'object' || data === null || typeof data.bench !== 'string' || !Array.isArray(data.rows))
    throw new Error(`plot: ${file} is not a bench --json result ({ bench, conditions, rows })`);
  for (const r of data.rows)
    if (typeof r !== 'object' || r === null || typeof r.system !== 'string')
      throw new Error(`plot: ${file}: every row needs a string "system"`);
  return { bench: data.bench, conditions: data.conditions ?? {}, rows: data.rows };
}

/**
 * Write the plots of each file; returns the paths written. A file whose rows
 * carry no round trips (or no throughput) gets only the other plot, with a
 * note on stderr.
 */
export function plotFiles(files: string[], outDir?: string): string[] {
  const written: string[] = [];
  for (const file of files) {
    const result = readResult(file);
    const dir = outDir ?? dirname(file);
    mkdirSync(dir, { recursive: true });
    const base = basename(file).replace(/\.json$/i, '');
    for (const [suffix, render] of [
      ['throughput', throughputSvg],
      ['latency', latencySvg],
    ] as const) {
      let svg: string;
      try {
        svg = render(result);
      } catch (err) {
        process.stderr.write(`${(err as Error).message}; no ${suffix} plot for ${file}\n`);
        continue;
      }
      const path = join(dir, `${base}-${suffix}.svg`);
      writeFileSync(path, svg);
      written.push(path);
    }
  }
  return written;
}

function main(): void {
  const { values, positionals } = parseArgs({
    options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write('usage: npm run plot -- FILE.json... [--out DIR]\n');
    process.exit(values.help ? 0 : 2);
  }
  try {
    for (const p of plotFiles(positionals, values.out)) process.stdout.write(`${p}\n`);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
