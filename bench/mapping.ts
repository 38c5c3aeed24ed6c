/**
 * Translation speed of a compiled seed mapping, side by side with a hand-written function that
 * builds the same request (the fastest this translation could be), in the same run.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { compileMapping } from '../mappings/language.js';
import { yuanToWan } from '../model/decimal.js';
import type { UnifiedCase } from '../model/case.js';
import { invCase } from '../tests/fixtures/cases.js';

export interface BenchResult {
  name: string;
  opsPerSecond: number;
  baseline: string;
  baselineOpsPerSecond: number;
  ratio: number;
}

function measure(fn: (i: number) => unknown, ms: number): number {
  for (let i = 0; i < 20_000; i++) fn(i); // warm-up: let the JIT settle
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 1000; i++) fn(n + i);
    n += 1000;
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

const ENERGY: Record<string, string> = { done: '已完成', exempt: '免于评估', pending: '进行中' };

/** The seed 640100-INV-0201 written out by hand, for the baseline. */
function handWritten(c: UnifiedCase): Record<string, unknown> {
  const o = c.organisation!;
  const p = c.project!;
  const bj = new Date(Date.parse(c.receivedAt) + 8 * 3600_000).toISOString();
  return {
    project_code: p.code,
    project_name: p.name.trim(),
    construction_unit: { name: o.name.trim(), uscc: o.uscc, legal_person: o.legalPerson, contact_phone: o.phone || '' },
    total_investment_wan: yuanToWan(p.totalInvestmentYuan ?? ''),
    construction_site: p.site,
    start_year: p.startYear,
    extra: { industry: String(c.form?.industry), energy_assessment: ENERGY[String(c.form?.energyAssessment)], received_at: `${bj.slice(0, 10)} ${bj.slice(11, 19)}` },
  };
}

export function benchMapping(ms = 2000): BenchResult {
  const doc = parseYaml(readFileSync('mappings/seeds/640100-INV-0201.yaml', 'utf8'));
  const compiled = compileMapping(doc, 1);
  if (!compiled.ok) throw new Error('seed mapping does not compile');
  const cases = Array.from({ length: 64 }, (_, i) => invCase(`BENCH-${i}`, { receivedAt: `2026-11-24T09:${String(i % 60).padStart(2, '0')}:00+08:00` }));
  // Same output, or the comparison means nothing.
  const a = compiled.mapping.translate(cases[0]!);
  if (!a.ok || JSON.stringify(a.routes[0]!.payload) !== JSON.stringify(handWritten(cases[0]!))) throw new Error('baseline and mapping disagree');
  const mapped = measure((i) => compiled.mapping.translate(cases[i & 63]!), ms);
  const hand = measure((i) => handWritten(cases[i & 63]!), ms);
  return { name: 'translate 640100-INV-0201 (compiled mapping)', opsPerSecond: mapped, baseline: 'hand-written translation of the same item', baselineOpsPerSecond: hand, ratio: mapped / hand };
}
