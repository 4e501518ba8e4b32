/**
 * A training history drawn as an SVG file: the chapter's two panels side by side, the training
 * loss against the step with the validation losses as points, and the learning rate against the
 * step, each with labelled axes, ticks and a grid. Plain SVG text with no dependency, so Node code
 * (and the CLI) can write a picture to keep; exported from tinygpt/node only, so browser and edge
 * bundles never carry it (pages draw on a canvas).
 *
 * The drawing is also machine-readable: each panel is a <g data-panel> whose plot area and data
 * ranges are in data-* attributes, and each series is <polyline data-series> or <circle> marks,
 * so a test can map every drawn point back to the history.
 */
import type { HistoryEntry } from '../train/checkpoint.js';
import { fail } from '../util/describe.js';

export interface HistoryPlotOptions {
  /** whole picture, in pixels (default 1000 x 360) */
  width?: number;
  height?: number;
  /** a line above both panels (default none) */
  title?: string;
}

/** matplotlib's first three colours, as the chapter's figure has them */
const COLORS = { train: '#1f77b4', val: '#ff7f0e', lr: '#2ca02c' };
const MARGIN = { left: 78, right: 24, top: 40, bottom: 52 };

interface Series {
  name: string;
  label: string;
  color: string;
  points: [number, number][];
  /** a line through the points, or one mark per point */
  style: 'line' | 'points';
}

/** The SVG text of a history (from train(), a checkpoint, or `tinygpt train --plot`). */
export function plotHistorySVG(history: readonly HistoryEntry[], options: HistoryPlotOptions = {}): string {
  const given: unknown = history;
  if (!Array.isArray(given) || given.length === 0) {
    throw new RangeError('plotHistorySVG: history must be a non-empty array of { step, trainLoss, learningRate, valLoss? } entries');
  }
  history.forEach((h, i) => {
    if (h === null || typeof h !== 'object' || !Number.isFinite(h.step)) {
      throw new TypeError(`plotHistorySVG: history[${i}] needs a finite step; got ${JSON.stringify(h)}`);
    }
  });
  const width = options.width ?? 1000;
  const height = options.height ?? 360;
  for (const [name, value, min] of [
    ['width', width, 300],
    ['height', height, 160],
  ] as const) {
    if (!(Number.isFinite(value) && value >= min)) fail(`plotHistorySVG: ${name}`, `a number >= ${min}`, value);
  }
  const pairs = (pick: (h: HistoryEntry) => number | undefined): [number, number][] =>
    history.map((h) => [h.step, pick(h)] as [number, number | undefined]).filter((p): p is [number, number] => Number.isFinite(p[1]));

  const top = options.title ? MARGIN.top + 22 : MARGIN.top;
  const panelWidth = width / 2;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  );
  if (options.title) parts.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16">${escapeXml(options.title)}</text>`);
  parts.push(
    panel({ id: 'loss', title: 'Training Progress', x0: 0, top, width: panelWidth, height, yLabel: 'Loss' }, [
      { name: 'train-loss', label: 'Train Loss', color: COLORS.train, points: pairs((h) => h.trainLoss), style: 'line' },
      { name: 'val-loss', label: 'Val Loss', color: COLORS.val, points: pairs((h) => h.valLoss), style: 'points' },
    ]),
    panel({ id: 'lr', title: 'Learning Rate Schedule', x0: panelWidth, top, width: panelWidth, height, yLabel: 'Learning Rate' }, [
      { name: 'learning-rate', label: 'Learning Rate', color: COLORS.lr, points: pairs((h) => h.learningRate), style: 'line' },
    ]),
    '</svg>',
  );
  return parts.join('\n') + '\n';
}

interface PanelLayout {
  id: string;
  title: string;
  x0: number;
  top: number;
  width: number;
  height: number;
  yLabel: string;
}

function panel(layout: PanelLayout, series: Series[]): string {
  const left = layout.x0 + MARGIN.left;
  const right = layout.x0 + layout.width - MARGIN.right;
  const top = layout.top;
  const bottom = layout.height - MARGIN.bottom;
  const all = series.flatMap((s) => s.points);
  const xs = niceScale(
    all.map((p) => p[0]),
    6,
  );
  const ys = niceScale(
    all.map((p) => p[1]),
    5,
  );
  const px = (x: number) => round(left + ((x - xs.min) / (xs.max - xs.min)) * (right - left));
  const py = (y: number) => round(bottom - ((y - ys.min) / (ys.max - ys.min)) * (bottom - top));

  const out: string[] = [
    `<g data-panel="${layout.id}" data-left="${left}" data-right="${right}" data-top="${top}" data-bottom="${bottom}" ` +
      `data-x-min="${xs.min}" data-x-max="${xs.max}" data-y-min="${ys.min}" data-y-max="${ys.max}">`,
    `<text x="${round((left + right) / 2)}" y="${top - 12}" text-anchor="middle" font-size="14">${escapeXml(layout.title)}</text>`,
  ];
  // grid and ticks
  for (const x of xs.ticks) {
    out.push(
      `<line x1="${px(x)}" y1="${top}" x2="${px(x)}" y2="${bottom}" stroke="#e6e6e6"/>`,
      `<line x1="${px(x)}" y1="${bottom}" x2="${px(x)}" y2="${bottom + 5}" stroke="#333"/>`,
      `<text x="${px(x)}" y="${bottom + 18}" text-anchor="middle" data-tick="x">${formatTick(x, xs.step)}</text>`,
    );
  }
  for (const y of ys.ticks) {
    out.push(
      `<line x1="${left}" y1="${py(y)}" x2="${right}" y2="${py(y)}" stroke="#e6e6e6"/>`,
      `<line x1="${left - 5}" y1="${py(y)}" x2="${left}" y2="${py(y)}" stroke="#333"/>`,
      `<text x="${left - 8}" y="${py(y) + 4}" text-anchor="end" data-tick="y">${formatTick(y, ys.step)}</text>`,
    );
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${round(right - left)}" height="${round(bottom - top)}" fill="none" stroke="#333"/>`,
    `<text x="${round((left + right) / 2)}" y="${bottom + 40}" text-anchor="middle">Step</text>`,
    `<text x="${layout.x0 + 18}" y="${round((top + bottom) / 2)}" text-anchor="middle" transform="rotate(-90 ${layout.x0 + 18} ${round((top + bottom) / 2)})">${escapeXml(layout.yLabel)}</text>`,
  );
  // the series, then a legend in the top right corner
  for (const s of series) {
    if (s.style === 'line') {
      const pts = s.points.map(([x, y]) => `${px(x)},${py(y)}`).join(' ');
      out.push(`<polyline data-series="${s.name}" fill="none" stroke="${s.color}" stroke-width="2" points="${pts}"/>`);
    } else {
      out.push(`<g data-series="${s.name}" fill="${s.color}">`);
      for (const [x, y] of s.points) out.push(`<circle cx="${px(x)}" cy="${py(y)}" r="4"/>`);
      out.push('</g>');
    }
  }
  const shown = series.filter((s) => s.points.length > 0);
  shown.forEach((s, i) => {
    const y = top + 16 + i * 18;
    const x = right - 110;
    out.push(
      s.style === 'line'
        ? `<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${s.color}" stroke-width="2"/>`
        : `<circle cx="${x + 11}" cy="${y}" r="4" fill="${s.color}"/>`,
      `<text x="${x + 28}" y="${y + 4}">${escapeXml(s.label)}</text>`,
    );
  });
  out.push('</g>');
  return out.join('\n');
}

/** An axis range that starts and ends on ticks of 1, 2, 2.5 or 5 times a power of ten. */
function niceScale(values: number[], targetTicks: number): { min: number; max: number; step: number; ticks: number[] } {
  let lo = values.length > 0 ? Math.min(...values) : 0;
  let hi = values.length > 0 ? Math.max(...values) : 1;
  if (hi === lo) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / targetTicks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * magnitude >= raw)! * magnitude;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  return { min: ticks[0], max: ticks[ticks.length - 1], step, ticks };
}

/** Tick labels with as many decimals as the step needs; exponents for small learning rates. */
function formatTick(value: number, step: number): string {
  if (value === 0) return '0';
  if (step < 1e-3 || Math.abs(value) >= 1e6) return Number(value.toPrecision(3)).toExponential().replace('e-', 'e−');
  const decimals = Math.max(
    0,
    -Math.floor(Math.log10(step) + 1e-9) + (Number.isInteger(step / 10 ** Math.floor(Math.log10(step))) ? 0 : 1),
  );
  return value.toFixed(decimals).replace('-', '−');
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
