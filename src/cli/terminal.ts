/** Terminal output for the CLI: a one-line progress bar and a small loss chart. */

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--:--';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export interface ProgressFields {
  step: number;
  totalSteps: number;
  loss: number;
  learningRate: number;
  tokensPerSecond: number;
  elapsedMs: number;
}

/**
 * Redraws one line in place on a TTY (a bar, step, loss, learning rate, tokens/s, time left); on a
 * pipe it prints a plain line every `pipeEvery` steps so logs stay readable.
 */
export class ProgressBar {
  private lastLineLength = 0;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly pipeEvery = 50,
  ) {}

  update(f: ProgressFields): void {
    const frac = Math.min(1, f.step / f.totalSteps);
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const left = f.step > 0 ? (f.elapsedMs / f.step) * (f.totalSteps - f.step) : NaN;
    const text =
      `${bar} ${String(f.step).padStart(String(f.totalSteps).length)}/${f.totalSteps}` +
      `  loss ${f.loss.toFixed(4)}  lr ${f.learningRate.toExponential(2)}` +
      `  ${Math.round(f.tokensPerSecond).toLocaleString('en-US')} tok/s  ${formatDuration(f.elapsedMs)} elapsed, ${formatDuration(left)} left`;
    if (this.out.isTTY) {
      this.out.write(`\r${text.padEnd(this.lastLineLength)}`);
      this.lastLineLength = text.length;
    } else if (f.step % this.pipeEvery === 0 || f.step === f.totalSteps) {
      this.out.write(`${text}\n`);
    }
  }

  /** print a whole line above the bar (validation results) */
  log(line: string): void {
    if (this.out.isTTY && this.lastLineLength > 0) this.out.write(`\r${' '.repeat(this.lastLineLength)}\r`);
    this.out.write(`${line}\n`);
    this.lastLineLength = 0;
  }

  done(): void {
    if (this.out.isTTY && this.lastLineLength > 0) this.out.write('\n');
    this.lastLineLength = 0;
  }
}

/**
 * A plain-text line chart of one or two series over steps, `height` rows tall, for the end of a
 * training run. Series points are (step, value); missing values are skipped.
 */
export function lossChart(series: { label: string; mark: string; points: [number, number][] }[], width = 60, height = 12): string {
  const all = series.flatMap((s) => s.points).filter(([, v]) => Number.isFinite(v));
  if (all.length === 0) return '(no points to chart)';
  const xMin = Math.min(...all.map(([x]) => x));
  const xMax = Math.max(...all.map(([x]) => x));
  const yMin = Math.min(...all.map(([, y]) => y));
  const yMax = Math.max(...all.map(([, y]) => y));
  const grid = Array.from({ length: height }, () => new Array<string>(width).fill(' '));
  const col = (x: number) => (xMax === xMin ? 0 : Math.round(((x - xMin) / (xMax - xMin)) * (width - 1)));
  const row = (y: number) => (yMax === yMin ? height - 1 : height - 1 - Math.round(((y - yMin) / (yMax - yMin)) * (height - 1)));
  for (const s of series) for (const [x, y] of s.points) if (Number.isFinite(y)) grid[row(y)][col(x)] = s.mark;
  const labelWidth = Math.max(yMax.toFixed(2).length, yMin.toFixed(2).length);
  const lines = grid.map((cells, i) => {
    const y = yMax - ((yMax - yMin) * i) / Math.max(1, height - 1);
    const label = i === 0 || i === height - 1 || i === Math.floor(height / 2) ? y.toFixed(2) : '';
    return `${label.padStart(labelWidth)} │${cells.join('')}`;
  });
  lines.push(`${' '.repeat(labelWidth)} └${'─'.repeat(width)}`);
  const xAxis = `${xMin}`.padEnd(width - `${xMax}`.length) + `${xMax}`;
  lines.push(`${' '.repeat(labelWidth + 2)}${xAxis}  (step)`);
  lines.push(`${' '.repeat(labelWidth + 2)}${series.map((s) => `${s.mark} ${s.label}`).join('   ')}`);
  return lines.join('\n');
}
