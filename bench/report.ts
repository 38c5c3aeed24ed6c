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

const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
export const REPORT_JSON = join(dir, 'latest.json');
export const REPORT_MD = join(dir, 'latest.md');

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
}

interface Report {
  updatedAt: string;
  machine: Machine;
  bench?: { at: string; figures: Figure[]; details: Record<string, unknown> };
  reliability?: Record<string, { at: string; [k: string]: unknown }>;
}

function load(): Report {
  if (existsSync(REPORT_JSON)) {
    try {
      return JSON.parse(readFileSync(REPORT_JSON, 'utf8')) as Report;
    } catch {
      /* a broken report is replaced */
    }
  }
  return { updatedAt: new Date().toISOString(), machine: machine() };
}

function save(r: Report) {
  r.updatedAt = new Date().toISOString();
  r.machine = machine();
  mkdirSync(dir, { recursive: true });
  writeFileSync(REPORT_JSON, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(REPORT_MD, render(r));
}

/** A partial run (BENCH_ONLY) replaces its own figures and keeps the others, each with its date. */
export function recordBench(figures: Figure[], details: Record<string, unknown>): void {
  const r = load();
  const at = new Date().toISOString();
  const fresh = new Map(figures.map((f) => [f.name, { ...f, at }]));
  const merged = (r.bench?.figures ?? []).map((f) => fresh.get(f.name) ?? f);
  for (const f of fresh.values()) if (!merged.some((m) => m.name === f.name)) merged.push(f);
  r.bench = { at, figures: merged, details: { ...(r.bench?.details ?? {}), ...details } };
  save(r);
}

export function recordReliability(name: string, figures: Record<string, unknown>): void {
  const r = load();
  r.reliability = { ...(r.reliability ?? {}), [name]: { at: new Date().toISOString(), ...figures } };
  save(r);
}

const fmt = (n: number) => (Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en') : Number(n.toPrecision(3)).toString());

function render(r: Report): string {
  const m = r.machine;
  const out = [
    '# Gateway performance and reliability report',
    '',
    `Updated ${r.updatedAt}. Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB; ${m.platform}; Node ${m.node}; Redis ${m.redis}.`,
    'Every baseline ran in the same run, on the same machine and Redis, so ratios hold on a noisy machine.',
    '',
  ];
  if (r.bench) {
    out.push('## Benchmarks (`npm run bench`)', '', '| figure | value | baseline | baseline value | ratio | goal | measured |', '|---|---|---|---|---|---|---|');
    for (const f of r.bench.figures) {
      const goal = f.goal ? `${f.goal}: ${f.met === undefined ? '—' : f.met ? 'met' : '**not met**'}` : '';
      out.push(`| ${f.name} | ${fmt(f.value)} ${f.unit} | ${f.baseline?.name ?? ''} | ${f.baseline ? fmt(f.baseline.value) : ''} | ${f.ratio !== undefined ? `${f.ratio.toFixed(2)}×` : ''} | ${goal} | ${f.at?.slice(0, 16).replace('T', ' ') ?? ''} |`);
    }
    const notes = r.bench.figures.filter((f) => f.note);
    if (notes.length) out.push('', ...notes.map((f) => `- ${f.name}: ${f.note}`));
    out.push('');
  }
  if (r.reliability) {
    out.push('## Reliability suite (`npm run test:reliability`)', '');
    for (const [name, v] of Object.entries(r.reliability)) {
      const { at, ...rest } = v;
      out.push(`### ${name} (${at})`, '', ...Object.entries(rest).map(([k, x]) => `- ${k}: ${typeof x === 'number' ? fmt(x) : JSON.stringify(x)}`), '');
    }
  }
  return `${out.join('\n')}\n`;
}
