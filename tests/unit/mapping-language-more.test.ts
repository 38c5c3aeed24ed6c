/** The rest of the mapping language: transforms, conditions, repeated groups, joint items, status tables. */
import { describe, expect, it } from 'vitest';
import { compileMapping } from '../../mappings/language.js';
import type { UnifiedCase } from '../../model/case.js';
import { invCase } from '../fixtures/cases.js';

function mapping(routes: unknown[]) {
  const r = compileMapping({ itemCode: 'T-2', routes }, 3);
  if (!r.ok) throw new Error(JSON.stringify(r.faults));
  return r.mapping;
}
const route = (request: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ department: 'ps', businessType: 'HJ0101', request, ...extra });
function payload(request: Record<string, unknown>, c: unknown) {
  const t = mapping([route(request)]).translate(c as UnifiedCase);
  if (!t.ok) throw new Error(JSON.stringify(t.faults));
  return t.routes[0]!.payload;
}
function faults(request: Record<string, unknown>, c: unknown) {
  const t = mapping([route(request)]).translate(c as UnifiedCase);
  return t.ok ? [] : t.faults.map((f) => `${f.path}:${f.code}`);
}

const base = invCase('L-1');

describe('string transforms', () => {
  it('full-width to half-width, then case', () => {
    const c = { ...base, form: { code: '９１３５０１００ｍ０００１００ｙ４３', addr: '北京市\u3000朝阳区（Ａ座）' } };
    expect(payload({ code: { path: 'form.code', halfWidth: true, case: 'upper' }, addr: { path: 'form.addr', halfWidth: true } }, c)).toEqual({
      code: '91350100M000100Y43',
      addr: '北京市 朝阳区(A座)',
    });
    expect(payload({ low: { const: 'ABC', case: 'lower' } }, c)).toEqual({ low: 'abc' });
  });

  it('a length limit counts after the transforms, and refuses rather than truncates', () => {
    const c = { ...base, form: { s: '  ＡＢＣ  ' } };
    expect(payload({ s: { path: 'form.s', halfWidth: true, trim: true, maxLength: 3 } }, c)).toEqual({ s: 'ABC' });
    expect(faults({ s: { path: 'form.s', maxLength: 3 } }, c)).toEqual(['form.s:TOO_LONG']);
  });
});

describe('conditions', () => {
  it('leave a value out when they do not hold', () => {
    const spec = { legal: { path: 'organisation.legalPerson', when: { path: 'applicant.kind', equals: 'legal' } }, person: { path: 'applicant.name', when: { path: 'applicant.kind', in: ['person'] } } };
    expect(payload(spec, base)).toEqual({ person: '张三' });
  });

  it('a required value under a false condition is not required', () => {
    expect(payload({ x: { path: 'form.absent', required: true, when: { path: 'form.industry', exists: false } } }, base)).toEqual({});
    expect(faults({ x: { path: 'form.absent', required: true, when: { path: 'form.industry', exists: true } } }, base)).toEqual(['form.absent:REQUIRED']);
  });

  it('combine with all, any and not, and compare numbers with strings by value', () => {
    const when = { all: [{ path: 'project.startYear', equals: '2027' }, { any: [{ path: 'form.industry', equals: '电力' }, { path: 'form.industry', equals: '化工' }] }, { not: { path: 'applicant.gender', notEquals: 'female' } }] };
    expect(payload({ y: { const: 'yes', when } }, base)).toEqual({ y: 'yes' });
    expect(payload({ y: { const: 'yes', when: { not: when } } }, base)).toEqual({});
  });

  it('decide which routes a case takes', () => {
    const m = mapping([
      { department: 'tax', businessType: 'SWDJ01', request: { a: { const: 1 } } },
      { department: 'si', businessType: 'SI0102', when: { path: 'form.employees', exists: true }, request: { b: { const: 2 } } },
    ]);
    const without = m.translate(base);
    expect(without.ok && without.routes.map((r) => r.department)).toEqual(['tax']);
    const withEmployees = m.translate({ ...base, form: { employees: 3 } });
    expect(withEmployees.ok && withEmployees.routes.map((r) => r.department)).toEqual(['tax', 'si']);
    const none = mapping([{ department: 'si', businessType: 'SI0102', when: { path: 'form.employees', exists: true }, request: {} }]).translate(base);
    expect(none).toEqual({ ok: false, faults: [expect.objectContaining({ path: 'itemCode', code: 'NO_ROUTE' })] });
  });

  it('malformed conditions are refused with their path', () => {
    const r = compileMapping({ itemCode: 'T', routes: [route({ a: { const: 1, when: { path: 'x', equals: 1, exists: true } }, b: { const: 1, when: { all: [{ path: 'x' }], not: { path: 'y', exists: true } } }, c: { const: 1, when: { path: 'bad..path', exists: true } } })] }, 1);
    expect(!r.ok && r.faults.map((f) => `${f.path}:${f.code}`)).toEqual([
      'routes[0].request.a.when:BAD_CONDITION',
      'routes[0].request.b.when:BAD_CONDITION',
      'routes[0].request.c.when.path:BAD_PATH',
    ]);
    // Schema-level faults inside a condition name their place too.
    const s = compileMapping({ itemCode: 'T', routes: [route({ a: { const: 1, when: { any: [], path: 'x', equals: { no: 1 } } } })] }, 1);
    expect(!s.ok && s.faults.map((f) => f.path)).toEqual(expect.arrayContaining(['routes[0].request.a.when.any', 'routes[0].request.a.when.equals']));
  });
});

describe('repeated groups', () => {
  it('the form object becomes a key/value list (si:item, KZXX/XX)', () => {
    const c = { ...base, form: { industry: '电力', floors: 3 } };
    expect(payload({ items: { list: { path: 'form', item: { fields: { key: { path: 'key' }, value: { path: 'value', type: 'string' } } } } } }, c)).toEqual({
      items: [
        { key: 'industry', value: '电力' },
        { key: 'floors', value: '3' },
      ],
    });
  });

  it('an array becomes a list, items read relative to the element and the case through $case', () => {
    const c = { ...base, form: { members: [{ name: '王五', rel: 'child' }, { name: '赵六', rel: 'spouse' }] } };
    const spec = { members: { list: { path: 'form.members', item: { fields: { xm: { path: 'name' }, gx: { path: 'rel', table: { child: '20', spouse: '10' } }, hz: { path: '$case.applicant.name' } } } } } };
    expect(payload(spec, c)).toEqual({ members: [{ xm: '王五', gx: '20', hz: '张三' }, { xm: '赵六', gx: '10', hz: '张三' }] });
  });

  it('faults inside a list name the element', () => {
    const c = { ...base, form: { members: [{ name: '王五', rel: 'child' }, { rel: 'cousin' }] } };
    const spec = { members: { list: { path: 'form.members', item: { fields: { xm: { path: 'name', required: true }, gx: { path: 'rel', table: { child: '20' } } } } } } };
    expect(faults(spec, c)).toEqual(['form.members[1].name:REQUIRED', 'form.members[1].rel:NO_CODE']);
  });

  it('too many entries and an empty required list are faults', () => {
    const c = { ...base, form: { members: [1, 2, 3] } };
    expect(faults({ m: { list: { path: 'form.members', maxItems: 2, item: { path: '$case.caseNo' } } } }, c)).toEqual(['form.members:TOO_MANY']);
    expect(faults({ m: { required: true, list: { path: 'form.none', item: { path: 'x' } } } }, c)).toEqual(['form.none:REQUIRED']);
  });
});

describe('counts', () => {
  it('count the elements of an array or the entries of an object, 0 when absent', () => {
    const c = { ...base, materials: [{ id: 'M1' }, { id: 'M2' }], form: { a: 1, b: 2, c: 3 } };
    expect(payload({ m: { count: 'materials' }, f: { count: 'form' }, none: { count: 'form.nothing' } }, c)).toEqual({ m: 2, f: 3, none: 0 });
    const r = compileMapping({ itemCode: 'T', routes: [route({ m: { count: 'materials', path: 'x' } })] }, 1);
    expect(!r.ok && r.faults.map((f) => f.code)).toEqual(['AMBIGUOUS_SOURCE']);
  });
});

describe('status tables', () => {
  it('map department statuses to unified ones, per route, own keys only', () => {
    const m = mapping([route({}, { statuses: { '1': 'SUBMITTED', '3': 'APPROVED', '5': 'RETURNED' } })]);
    expect(m.statusFor('ps', '3')).toBe('APPROVED');
    expect(m.statusFor('ps', '9')).toBeUndefined();
    expect(m.statusFor('ps', 'constructor')).toBeUndefined();
    expect(m.statusFor('si', '3')).toBeUndefined();
    const bad = compileMapping({ itemCode: 'T', routes: [route({}, { statuses: { '3': 'DONE' } })] }, 1);
    expect(!bad.ok && bad.faults[0]!.path).toBe('routes[0].statuses[3]');
  });
});
