/**
 * plotHistorySVG: every drawn point maps back, through the panel's plot area and axis range, to
 * the history value it stands for; the axes cover the data and are labelled; and Chromium renders
 * the file with both panels visible in a screenshot.
 */
import { describe, expect, it } from 'vitest';
import { createModel } from '../../src/model/create.js';
import { train } from '../../src/train/trainer.js';
import type { HistoryEntry } from '../../src/train/checkpoint.js';
import { plotHistorySVG } from '../../src/plot/history-svg.js';
import { historyFromBytes } from '../../src/plot/history-file.js';
import { chromiumMissingReason, launchChromium } from '../helpers/chromium.js';

interface Panel {
  left: number;
  right: number;
  top: number;
  bottom: number;
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  body: string;
}

function panels(svg: string): Record<string, Panel> {
  const out: Record<string, Panel> = {};
  for (const m of svg.matchAll(/<g data-panel="(\w+)"([^>]*)>([\s\S]*?)\n<\/g>(?=\n<g data-panel|\n<\/svg>)/g)) {
    const attr = (name: string) => Number(new RegExp(`data-${name}="([^"]+)"`).exec(m[2])![1]);
    out[m[1]] = {
      left: attr('left'),
      right: attr('right'),
      top: attr('top'),
      bottom: attr('bottom'),
      xMin: attr('x-min'),
      xMax: attr('x-max'),
      yMin: attr('y-min'),
      yMax: attr('y-max'),
      body: m[3],
    };
  }
  return out;
}

/** drawn pixel positions -> data values, through the panel's own scale */
function unproject(p: Panel, px: number, py: number): [number, number] {
  return [
    p.xMin + ((px - p.left) / (p.right - p.left)) * (p.xMax - p.xMin),
    p.yMin + ((p.bottom - py) / (p.bottom - p.top)) * (p.yMax - p.yMin),
  ];
}

function line(p: Panel, series: string): [number, number][] {
  const m = new RegExp(`<polyline data-series="${series}"[^>]* points="([^"]*)"`).exec(p.body);
  if (!m) return [];
  return m[1].split(' ').map((xy) => unproject(p, ...(xy.split(',').map(Number) as [number, number])));
}

function marks(p: Panel, series: string): [number, number][] {
  const group = new RegExp(`<g data-series="${series}"[^>]*>([\\s\\S]*?)</g>`).exec(p.body);
  return [...(group?.[1] ?? '').matchAll(/cx="([^"]+)" cy="([^"]+)"/g)].map((c) => unproject(p, Number(c[1]), Number(c[2])));
}

/** every drawn point equals its history value to within a pixel's worth of the axis range */
function expectCurve(p: Panel, drawn: [number, number][], expected: [number, number][]): void {
  expect(drawn).toHaveLength(expected.length);
  const dx = ((p.xMax - p.xMin) / (p.right - p.left)) * 0.02;
  const dy = ((p.yMax - p.yMin) / (p.bottom - p.top)) * 0.02;
  drawn.forEach(([x, y], i) => {
    expect(Math.abs(x - expected[i][0])).toBeLessThanOrEqual(dx);
    expect(Math.abs(y - expected[i][1])).toBeLessThanOrEqual(dy);
  });
}

/** a history as train() makes it: 60 steps logged every 2, validation every 10, warmup then decay */
function syntheticHistory(): HistoryEntry[] {
  const history: HistoryEntry[] = [];
  for (let step = 2; step <= 60; step += 2) {
    const entry: HistoryEntry = {
      step,
      trainLoss: 6 * Math.exp(-step / 25) + 1.5 + 0.1 * Math.sin(step),
      learningRate: step <= 10 ? (3e-4 * step) / 10 : 3e-5 + 0.5 * (3e-4 - 3e-5) * (1 + Math.cos((Math.PI * (step - 10)) / 50)),
      gradNorm: 1,
      tokensPerSecond: 1000,
      elapsedMs: step * 10,
    };
    if (step % 10 === 0) entry.valLoss = 6.5 * Math.exp(-step / 30) + 1.8;
    history.push(entry);
  }
  return history;
}

describe('plotHistorySVG', () => {
  const history = syntheticHistory();
  const svg = plotHistorySVG(history, { title: 'a <run> & more' });
  const byId = panels(svg);

  it('draws two panels: train loss with validation points, and the learning rate', () => {
    expect(Object.keys(byId)).toEqual(['loss', 'lr']);
    expect(byId.loss.right).toBeLessThan(byId.lr.left);
    expectCurve(
      byId.loss,
      line(byId.loss, 'train-loss'),
      history.map((h) => [h.step, h.trainLoss]),
    );
    expectCurve(
      byId.loss,
      marks(byId.loss, 'val-loss'),
      history.filter((h) => h.valLoss !== undefined).map((h) => [h.step, h.valLoss!]),
    );
    expectCurve(
      byId.lr,
      line(byId.lr, 'learning-rate'),
      history.map((h) => [h.step, h.learningRate]),
    );
  });

  it('axis ranges cover the data, and end on labelled ticks', () => {
    const losses = history.flatMap((h) => [h.trainLoss, h.valLoss ?? h.trainLoss]);
    const lr = byId.lr;
    for (const [p, ys] of [
      [byId.loss, losses],
      [lr, history.map((h) => h.learningRate)],
    ] as const) {
      expect(p.xMin).toBeLessThanOrEqual(2);
      expect(p.xMax).toBeGreaterThanOrEqual(60);
      expect(p.yMin).toBeLessThanOrEqual(Math.min(...ys));
      expect(p.yMax).toBeGreaterThanOrEqual(Math.max(...ys));
      // no wider than two tick steps beyond the data on either side
      expect(p.yMax - p.yMin).toBeLessThan((Math.max(...ys) - Math.min(...ys)) * 2);
      const yTicks = [...p.body.matchAll(/data-tick="y">([^<]+)</g)].map((m) => Number(m[1].replace('−', '-')));
      expect(yTicks.length).toBeGreaterThanOrEqual(3);
      expect(yTicks[0]).toBeCloseTo(p.yMin, 12);
      expect(yTicks.at(-1)).toBeCloseTo(p.yMax, 12);
      expect(p.body).toContain('>Step</text>');
    }
    expect(byId.loss.body).toContain('>Loss</text>');
    expect(lr.body).toContain('>Learning Rate</text>');
    expect(lr.body).toMatch(/data-tick="y">3e−4</);
    expect(svg).toContain('a &#60;run&#62; &#38; more');
  });

  it('leaves out non-finite losses (skipped steps) and a missing validation series', () => {
    const withNaN = history.map((h, i) => ({ ...h, trainLoss: i === 3 ? NaN : h.trainLoss, valLoss: undefined }));
    const p = panels(plotHistorySVG(withNaN)).loss;
    expect(line(p, 'train-loss')).toHaveLength(history.length - 1);
    expect(marks(p, 'val-loss')).toHaveLength(0);
    expect(p.body).not.toContain('Val Loss');
  });

  it('refuses an empty or malformed history, naming what is wrong', () => {
    expect(() => plotHistorySVG([])).toThrow(/non-empty array/);
    expect(() => plotHistorySVG([{ trainLoss: 1 } as HistoryEntry])).toThrow(/history\[0\] needs a finite step/);
    expect(() => plotHistorySVG(history, { width: 10 })).toThrow(/width must be a number >= 300/);
  });

  it('reads a history back from JSON (array or train() result) and refuses other files', () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    expect(historyFromBytes(bytes(JSON.stringify(history)), 'h.json')).toEqual(history);
    expect(historyFromBytes(bytes(JSON.stringify({ finalTrainLoss: 1, history })), 'r.json')).toEqual(history);
    expect(() => historyFromBytes(bytes('{"steps": 3}'), 'r.json')).toThrow(/r.json: expected a history array/);
    expect(() => historyFromBytes(new Uint8Array(16), 'model.safetensors')).toThrow(
      /model.safetensors: neither JSON nor a tinygpt training checkpoint/,
    );
  });
});

const chromiumMissing = chromiumMissingReason();
describe.skipIf(chromiumMissing !== null)(`the SVG in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  it('a screenshot of a real run shows both panels, each with its curve', async () => {
    const model = await createModel({ vocabSize: 12, maxSeqLen: 8, dModel: 16, nLayers: 1, nHeads: 2, backend: 'js' });
    const data = Int32Array.from({ length: 400 }, (_, i) => (i * 7) % 12);
    const result = await train(model, { data, valData: data.subarray(0, 100), steps: 40, batchSize: 4, evalInterval: 10, warmupSteps: 5 });
    model.dispose();
    const svg = plotHistorySVG(result.history);
    const byId = panels(svg);
    expectCurve(
      byId.loss,
      line(byId.loss, 'train-loss'),
      result.history.map((h) => [h.step, h.trainLoss]),
    );
    expect(marks(byId.loss, 'val-loss')).toHaveLength(4);

    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 360 } });
      await page.goto(`data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`);
      const png = await page.screenshot({ type: 'png' });
      // count each series' colour in each half of the screenshot, decoded by the browser itself
      const counts = await page.evaluate(async (base64) => {
        const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
        const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
        const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
        const ctx = canvas.getContext('2d')!;
        ctx.drawImage(bitmap, 0, 0);
        const { data, width } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
        const colours = { train: [0x1f, 0x77, 0xb4], val: [0xff, 0x7f, 0x0e], lr: [0x2c, 0xa0, 0x2c] };
        const result: Record<string, [number, number]> = {};
        for (const [name, [r, g, b]] of Object.entries(colours)) {
          const halves: [number, number] = [0, 0];
          for (let i = 0; i < data.length; i += 4) {
            if (Math.abs(data[i] - r) < 8 && Math.abs(data[i + 1] - g) < 8 && Math.abs(data[i + 2] - b) < 8) {
              halves[(i / 4) % width < width / 2 ? 0 : 1]++;
            }
          }
          result[name] = halves;
        }
        return { result, width: bitmap.width, height: bitmap.height };
      }, png.toString('base64'));
      expect([counts.width, counts.height]).toEqual([1000, 360]);
      // loss panel: the train curve and the validation marks; learning-rate panel: its curve only
      expect(counts.result.train[0]).toBeGreaterThan(200);
      expect(counts.result.val[0]).toBeGreaterThan(4 * 20);
      expect(counts.result.lr[1]).toBeGreaterThan(200);
      expect(counts.result.train[1] + counts.result.val[1] + counts.result.lr[0]).toBeLessThan(20);
    } finally {
      await browser.close();
    }
  });
});
