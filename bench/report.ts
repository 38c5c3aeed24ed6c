/**
 * The one performance and reliability report: bench/results/latest.json and a readable
 * latest.md. `npm run bench` writes its sections, `npm run test:reliability` adds its own; each
 * write keeps the other's sections, so the report gathers the latest of both.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEFAULT_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');
export const REPORT_MD = join(DEFAULT_DIR, 'latest.md');

/** Where the report lives, and the machine this run is on (both replaceable for tests). */
export interface ReportTarget {
  dir?: string;
  machine?: Machine;
}

export interface Machine {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  redis: string;
  platform: string;
}

export function machine(): Machine {
  let redis = 'unknown';
  try {
    redis = /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? redis;
  } catch {
    /* reported as unknown */
  }
  return { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, redis, platform: `${os.platform()} ${os.release()}` };
}

/** The short name a figure carries of the machine it was measured on. */
export function machineLabel(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, Node ${m.node}, Redis ${m.redis}`;
}

/** One measured figure beside its baseline from the same run. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** value ÷ baseline (or baseline ÷ value for times, where lower is better: see `lowerIsBetter`). */
  ratio?: number;
  lowerIsBetter?: boolean;
  goal?: string;
  met?: boolean;
  note?: string;
  /** When this figure (and its baseline) was measured. */
  at?: string;
  /** Which machine it was measured on (machineLabel): partial runs may come from different ones. */
  machine?: string;
}

interface Report {
  updatedAt: string;
  machine: Machine;
  bench?: { at: string; figures: Figure[]; details: Record<string, unknown> };
  reliability?: Record<string, { at: string; machine?: string; [k: string]: unknown }>;
}

function load(t: ReportTarget): Report {
  const file = join(t.dir ?? DEFAULT_DIR, 'latest.json');
  if (existsSync(file)) {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as Report;
    } catch {
      /* a broken report is replaced */
    }
  }
  return { updatedAt: new Date().toISOString(), machine: t.machine ?? machine() };
}

function save(r: Report, t: ReportTarget, m: Machine) {
  const dir = t.dir ?? DEFAULT_DIR;
  r.updatedAt = new Date().toISOString();
  r.machine = m;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'latest.json'), `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(join(dir, 'latest.md'), render(r));
}

/**
 * A partial run (BENCH_ONLY) replaces its own figures and keeps the others, each with its date
 * and machine. Figures from before machines were recorded are kept as from the report's machine
 * of that time.
 */
export function recordBench(figures: Figure[], details: Record<string, unknown>, t: ReportTarget = {}): void {
  const r = load(t);
  const m = t.machine ?? machine();
  const previousMachine = machineLabel(r.machine);
  const at = new Date().toISOString();
  const fresh = new Map(figures.map((f) => [f.name, { ...f, at, machine: machineLabel(m) }]));
  const merged = (r.bench?.figures ?? []).map((f) => fresh.get(f.name) ?? { ...f, machine: f.machine ?? previousMachine });
  for (const f of fresh.values()) if (!merged.some((x) => x.name === f.name)) merged.push(f);
  r.bench = { at, figures: merged, details: { ...(r.bench?.details ?? {}), ...details } };
  save(r, t, m);
}

export function recordReliability(name: string, figures: Record<string, unknown>, t: ReportTarget = {}): void {
  const r = load(t);
  const m = t.machine ?? machine();
  const previousMachine = machineLabel(r.machine);
  const kept = Object.fromEntries(Object.entries(r.reliability ?? {}).map(([k, v]) => [k, { ...v, machine: v.machine ?? previousMachine }]));
  r.reliability = { ...kept, [name]: { at: new Date().toISOString(), machine: machineLabel(m), ...figures } };
  save(r, t, m);
}

const fmt = (n: number) => (Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en') : Number(n.toPrecision(3)).toString());

function render(r: Report): string {
  const m = r.machine;
  const here = machineLabel(m);
  // Measured when, and where if not on the machine named at the top.
  const when = (at: string | undefined, on: string | undefined) => `${at?.slice(0, 16).replace('T', ' ') ?? ''}${on && on !== here ? ` on ${on}` : ''}`;
  const out = [
    '# Gateway performance and reliability report',
    '',
    `Updated ${r.updatedAt}. Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB; ${m.platform}; Node ${m.node}; Redis ${m.redis}.`,
    'Every baseline ran in the same run, on the same machine and Redis, so ratios hold on a noisy machine.',
    'A figure measured on another machine (a partial run there) says so beside its date.',
    '',
  ];
  if (r.bench) {
    out.push('## Benchmarks (`npm run bench`)', '', '| figure | value | baseline | baseline value | ratio | goal | measured |', '|---|---|---|---|---|---|---|');
    for (const f of r.bench.figures) {
      const goal = f.goal ? `${f.goal}: ${f.met === undefined ? '—' : f.met ? 'met' : '**not met**'}` : '';
      out.push(`| ${f.name} | ${fmt(f.value)} ${f.unit} | ${f.baseline?.name ?? ''} | ${f.baseline ? fmt(f.baseline.value) : ''} | ${f.ratio !== undefined ? `${f.ratio.toFixed(2)}×` : ''} | ${goal} | ${when(f.at, f.machine)} |`);
    }
    const notes = r.bench.figures.filter((f) => f.note);
    if (notes.length) out.push('', ...notes.map((f) => `- ${f.name}: ${f.note}`));
    out.push('');
  }
  if (r.reliability) {
    out.push('## Reliability suite (`npm run test:reliability`)', '');
    for (const [name, v] of Object.entries(r.reliability)) {
      const { at, machine: on, ...rest } = v;
      out.push(`### ${name} (${when(at, on)})`, '', ...Object.entries(rest).map(([k, x]) => `- ${k}: ${typeof x === 'number' ? fmt(x) : JSON.stringify(x)}`), '');
    }
  }
  return `${out.join('\n')}\n`;
}
