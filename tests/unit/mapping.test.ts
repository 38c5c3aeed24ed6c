import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { compileMapping, type CompiledMapping } from '../../mappings/language.js';
import type { UnifiedCase } from '../../model/case.js';
import { invCase, sampleCaseFor } from '../fixtures/cases.js';
import { validateCase } from '../../gateway/case-validation.js';

const seedsDir = fileURLToPath(new URL('../../mappings/seeds/', import.meta.url));

function compile(request: Record<string, unknown>): CompiledMapping {
  const r = compileMapping({ itemCode: 'T-1', routes: [{ department: 'inv', businessType: 'BT', request }] }, 1);
  if (!r.ok) throw new Error(JSON.stringify(r.faults));
  return r.mapping;
}

function translate(request: Record<string, unknown>, c: unknown = invCase('M-1')) {
  return compile(request).translate(c as UnifiedCase);
}

function payload(request: Record<string, unknown>, c?: unknown) {
  const t = translate(request, c);
  if (!t.ok) throw new Error(JSON.stringify(t.faults));
  return t.routes[0]!.payload;
}

describe('mapping language: features', () => {
  it('reads field paths, including array indices, and constants', () => {
    const c = { ...invCase('M-1'), form: { list: [{ a: 'x' }, { a: 'y' }] } };
    expect(payload({ name: { path: 'project.name' }, second: { path: 'form.list[1].a' }, fixed: { const: 'C' }, n: { const: 7 } }, c)).toEqual({
      name: c.project!.name,
      second: 'y',
      fixed: 'C',
      n: 7,
    });
  });

  it('uses a default when the value is absent or empty, and leaves optional fields out', () => {
    const c = invCase('M-1', { organisation: { ...invCase('M-1').organisation!, phone: '' } });
    expect(payload({ phone: { path: 'organisation.phone', default: 'none' }, missing: { path: 'form.nothing' } }, c)).toEqual({ phone: 'none' });
  });

  it('never reads through the prototype', () => {
    expect(payload({ p: { path: 'constructor' }, q: { path: 'project.__proto__' } })).toEqual({});
  });

  it('translates by shared and inline code tables', () => {
    expect(payload({ g: { path: 'applicant.gender', table: 'gender.si' }, e: { path: 'form.energyAssessment', table: { done: '已完成' } } })).toEqual({ g: '2', e: '已完成' });
  });

  it('formats dates in Beijing time', () => {
    const c = { ...invCase('M-1'), receivedAt: '2026-11-24T16:30:05Z' };
    expect(payload({ d: { path: 'receivedAt', date: 'YYYYMMDD' }, t: { path: 'receivedAt', date: 'YYYY-MM-DD HH:mm:ss' }, b: { path: 'applicant.birthDate', date: 'YYYY年MM月DD日' } }, c)).toEqual({
      d: '20261125',
      t: '2026-11-25 00:30:05',
      b: '1949年12月31日',
    });
  });

  it('converts yuan to 万元 exactly', () => {
    expect(payload({ w: { path: 'project.totalInvestmentYuan', amount: { shift: 4, places: 4 } } })).toEqual({ w: '12345.6789' });
  });

  it('trims, types and builds nested groups', () => {
    const c = { ...invCase('M-1'), form: { year: '2027', padded: '  a b  ' } };
    expect(payload({ y: { path: 'form.year', type: 'integer' }, s: { path: 'form.padded', trim: true }, g: { fields: { a: { const: 1 }, b: { path: 'form.none' } } } }, c)).toEqual({
      y: 2027,
      s: 'a b',
      g: { a: 1 },
    });
  });
});

describe('mapping language: faults name their path', () => {
  it('a missing required value', () => {
    expect(translate({ x: { path: 'form.absent', required: true } })).toEqual({ ok: false, faults: [expect.objectContaining({ path: 'form.absent', code: 'REQUIRED' })] });
  });

  it('a value outside the code table is refused, never passed through', () => {
    const c = { ...invCase('M-1'), form: { energyAssessment: 'maybe' } };
    expect(translate({ e: { path: 'form.energyAssessment', table: { done: '已完成' } } }, c)).toEqual({ ok: false, faults: [expect.objectContaining({ path: 'form.energyAssessment', code: 'NO_CODE' })] });
  });

  it('too long is refused rather than truncated, counting characters not bytes', () => {
    const c = { ...invCase('M-1'), form: { s: '一二三四五' } };
    expect(payload({ s: { path: 'form.s', maxLength: 5 } }, c)).toEqual({ s: '一二三四五' });
    expect(translate({ s: { path: 'form.s', maxLength: 4 } }, c)).toEqual({ ok: false, faults: [expect.objectContaining({ path: 'form.s', code: 'TOO_LONG' })] });
  });

  it('bad amounts, dates and numbers', () => {
    const c = { ...invCase('M-1'), form: { amt: '1,000', when: 'yesterday', n: 'abc', f: '1.5' } };
    const t = translate({ a: { path: 'form.amt', amount: { shift: 4, places: 4 } }, d: { path: 'form.when', date: 'YYYY' }, n: { path: 'form.n', type: 'number' }, i: { path: 'form.f', type: 'integer' } }, c);
    expect(t.ok).toBe(false);
    expect(!t.ok && t.faults.map((f) => `${f.path}:${f.code}`)).toEqual(['form.amt:BAD_AMOUNT', 'form.when:BAD_DATE', 'form.n:BAD_NUMBER', 'form.f:BAD_NUMBER']);
  });

  it('every fault of a case comes back, not just the first', () => {
    const t = translate({ a: { path: 'form.a', required: true }, b: { path: 'form.b', required: true } });
    expect(!t.ok && t.faults.map((f) => f.path)).toEqual(['form.a', 'form.b']);
  });
});

describe('mapping documents are validated with every fault and its path', () => {
  it('refuses unknown keys, bad paths, unknown tables, no source and two sources', () => {
    const r = compileMapping(
      {
        itemCode: 'T-1',
        routes: [{ department: 'inv', businessType: 'BT', request: { a: { path: 'x..y' }, b: { table: 'no.such' , path: 'a' }, c: {}, d: { path: 'a', const: 'b' }, e: { date: 'nothing' , path: 'a' } } }],
      },
      1,
    );
    expect(r.ok).toBe(false);
    expect(!r.ok && r.faults.map((f) => `${f.path}:${f.code}`)).toEqual([
      'routes[0].request.a.path:BAD_PATH',
      'routes[0].request.b.table:UNKNOWN_TABLE',
      'routes[0].request.c:NO_SOURCE',
      'routes[0].request.d:AMBIGUOUS_SOURCE',
      'routes[0].request.e.date:BAD_DATE_FORMAT',
    ]);
  });

  it('schema faults: unknown field, unknown department, missing request, two routes to one department', () => {
    const r = compileMapping({ itemCode: 'T 1', routes: [{ department: 'xx', businessType: 'BT' }], extra: true }, 1);
    expect(!r.ok && r.faults.map((f) => f.path).sort()).toEqual(['extra', 'itemCode', 'routes[0].department', 'routes[0].request'].sort());
    const dup = compileMapping({ itemCode: 'T-1', routes: [{ department: 'inv', businessType: 'A', request: {} }, { department: 'inv', businessType: 'B', request: {} }] }, 1);
    expect(!dup.ok && dup.faults).toEqual([expect.objectContaining({ path: 'routes[1].department', code: 'DUPLICATE_ROUTE' })]);
    const typo = compileMapping({ itemCode: 'T-1', routes: [{ department: 'inv', businessType: 'A', request: { a: { path: 'a', requried: true } } }] }, 1);
    expect(!typo.ok && typo.faults).toEqual([expect.objectContaining({ path: 'routes[0].request.a.requried', code: 'UNKNOWN_FIELD' })]);
  });

  it('refuses whatever garbage it is given without throwing', () => {
    for (const junk of [null, 1, 'x', [], {}, { routes: 'x' }, { itemCode: 'A', routes: [null] }, { itemCode: 'A', routes: [{ department: 'inv', businessType: 'B', request: { a: null } }] }]) {
      const r = compileMapping(junk, 1);
      expect(r.ok).toBe(false);
    }
  });
});

describe('seed mappings', () => {
  const seeds = readdirSync(seedsDir).filter((f) => f.endsWith('.yaml'));
  it('there are at least eight, across all four departments, with a joint item', () => {
    const docs = seeds.map((f) => parseYaml(readFileSync(seedsDir + f, 'utf8')) as { itemCode: string; routes: { department: string }[] });
    expect(docs.length).toBeGreaterThanOrEqual(8);
    expect(new Set(docs.flatMap((d) => d.routes.map((r) => r.department)))).toEqual(new Set(['si', 'tax', 'ps', 'inv']));
    expect(docs.find((d) => d.itemCode === '640100-QYKB-0001')!.routes.map((r) => r.department)).toEqual(['tax', 'si']);
    // File name and item code agree, so an admin finds the seed of an item.
    for (const [i, f] of seeds.entries()) expect(f).toBe(`${docs[i]!.itemCode}.yaml`);
  });

  it.each(seeds)('%s compiles and translates its sample case', (file) => {
    const r = compileMapping(parseYaml(readFileSync(seedsDir + file, 'utf8')), 1);
    expect(r.ok, JSON.stringify(!r.ok && r.faults)).toBe(true);
    if (!r.ok) return;
    const sample = sampleCaseFor(r.mapping.itemCode);
    // The sample is a valid unified case, as the platform would send it.
    expect(() => validateCase(JSON.parse(JSON.stringify(sample)), { usccExceptions: new Set(), now: new Date('2026-11-24T12:00:00Z') })).not.toThrow();
    const t = r.mapping.translate(sample);
    expect(t.ok, JSON.stringify(!t.ok && t.faults)).toBe(true);
  });

  it('企业开办 gives the tax and si requests of their specs', () => {
    const r = compileMapping(parseYaml(readFileSync(seedsDir + '640100-QYKB-0001.yaml', 'utf8')), 1);
    if (!r.ok) throw new Error('seed does not compile');
    const t = r.mapping.translate(sampleCaseFor('640100-QYKB-0001'));
    expect(t.ok && t.routes).toEqual([
      expect.objectContaining({ department: 'tax', businessType: 'SWDJ01', payload: expect.objectContaining({ nsrsbh: '91350100M000100Y43', fddbrsfzjlx: '201', fddbrsfzjhm: '440524188001010014', kyrq: '2026-12-01', extra: { accountingSystem: '小企业会计准则', invoiceNeeded: 'true' } }) }),
      expect.objectContaining({
        department: 'si',
        businessType: 'SI0102',
        payload: { person: { aac002: '440524188001010014', aac003: '李四', aac004: '1', aac006: '18800101', aae005: '0951-0000000' }, unit: { aab004: '银川某某新能源有限公司', aab998: '91350100M000100Y43' }, items: [{ key: 'employee', value: '110101199003074477' }], materialCount: 0 },
      }),
    ]);
    expect(r.mapping.statusFor('si', '05')).toBe('RETURNED');
    expect(r.mapping.statusFor('tax', 'REVIEWING')).toBe('IN_REVIEW');
  });

  it('出生登记 gives the ps SQR and KZXX/XX list', () => {
    const r = compileMapping(parseYaml(readFileSync(seedsDir + '640100-PS-0101.yaml', 'utf8')), 1);
    if (!r.ok) throw new Error('seed does not compile');
    const t = r.mapping.translate(sampleCaseFor('640100-PS-0101'));
    expect(t.ok && t.routes[0]!.payload).toEqual({
      SQR: { GMSFHM: '11010519491231002X', XM: '张三', XB: '2', MZ: '01', CSRQ: '19491231', LXDH: '13800000000', ZZ: '银川市兴庆区解放西街1号' },
      KZXX: { XX: [{ DM: 'XSEXM', value: '张小某' }, { DM: 'XSEXB', value: '2' }, { DM: 'XSECSRQ', value: '2026-11-01' }, { DM: 'XSECSD', value: '银川市妇幼保健院' }, { DM: 'YSQRGX', value: '母女' }] },
    });
  });

  it('640100-INV-0201 gives the inv request of the spec', () => {
    const r = compileMapping(parseYaml(readFileSync(seedsDir + '640100-INV-0201.yaml', 'utf8')), 1);
    if (!r.ok) throw new Error('seed does not compile');
    const t = r.mapping.translate({ ...invCase('SEED-2'), receivedAt: '2026-11-24T02:00:00Z' } as UnifiedCase);
    expect(t.ok && t.routes[0]).toMatchObject({
      department: 'inv',
      businessType: 'INV-HZ-001',
      payload: {
        project_code: '2019-640100-47-01-012345',
        total_investment_wan: '12345.6789',
        construction_unit: { uscc: '91350100M000100Y43' },
        extra: { energy_assessment: '已完成', received_at: '2026-11-24 10:00:00' },
      },
    });
  });
});
