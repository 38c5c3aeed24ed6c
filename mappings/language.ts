/**
 * The mapping language: a declarative document per item code that says which department routes a
 * case takes and how the unified case becomes each department's request. Documents are data; they
 * are validated (every fault with its path) and compiled once into plain closures. Nothing in a
 * mapping is ever evaluated as code.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { DEPARTMENTS, type DepartmentId, type UnifiedCase } from '../model/case.js';
import { DecimalFormatError, shiftDecimal } from '../model/decimal.js';
import type { ErrorDetail } from '../model/errors.js';
import { SHARED_TABLES } from './tables.js';

export interface ValueSpec {
  path?: string;
  const?: string | number | boolean;
  default?: string | number | boolean;
  required?: boolean;
  /** A shared table's name, or an inline table. A value with no entry is a fault, never passed through. */
  table?: string | Record<string, string>;
  /** Output format of a date: tokens YYYY MM DD HH mm ss (Beijing time), other characters literal. */
  date?: string;
  /** Exact decimal shift: value / 10^shift with `places` decimals (yuan → 万元 is shift 4). */
  amount?: { shift: number; places: number };
  trim?: boolean;
  /** Longer values are refused with the path named, never truncated. */
  maxLength?: number;
  type?: 'string' | 'number' | 'integer' | 'boolean';
  /** Upper or lower case (Latin letters; e.g. credit codes, passport numbers). */
  case?: 'upper' | 'lower';
  /** Full-width forms (ＡＢＣ１２３，全角空格) become their half-width ASCII equivalents. */
  halfWidth?: boolean;
  /** The value is produced only when the condition holds (otherwise it is left out, even if required). */
  when?: Condition;
  /** A nested object built from its own specs. */
  fields?: Record<string, ValueSpec>;
  /**
   * A repeated group: one output per element of the array at `path`, or per entry of the object at
   * `path` (elements `{ key, value }`). Inside `item`, paths are relative to the element; `$case.`
   * reaches the whole case.
   */
  list?: { path: string; item: ValueSpec; maxItems?: number };
  /** How many elements the array (or entries the object) at this path has; 0 when absent. */
  count?: string;
}

/** A test on the case. Leaves: `path` with one of equals, notEquals, in, exists. */
export type Condition =
  | { path: string; equals?: string | number | boolean; notEquals?: string | number | boolean; in?: (string | number)[]; exists?: boolean }
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition };

/** Unified statuses a department status may map to. */
export const MAPPABLE_STATUSES = ['SUBMITTED', 'IN_REVIEW', 'APPROVED', 'REJECTED', 'RETURNED'] as const;
export type MappableStatus = (typeof MAPPABLE_STATUSES)[number];

export interface RouteSpec {
  department: DepartmentId;
  /** The department-side business type (matter_code, businessType, bizType, YWLX). */
  businessType: string;
  /** The route is taken only when this holds (one item, different departments by case). */
  when?: Condition;
  request: Record<string, ValueSpec>;
  /** Department status → unified route status; overrides the connector's own table. */
  statuses?: Record<string, MappableStatus>;
}

export interface MappingDocument {
  itemCode: string;
  itemName?: string;
  description?: string;
  routes: RouteSpec[];
}

export interface TranslatedRoute {
  department: DepartmentId;
  businessType: string;
  payload: Record<string, unknown>;
}

export type Translation = { ok: true; routes: TranslatedRoute[] } | { ok: false; faults: ErrorDetail[] };

export interface CompiledMapping {
  itemCode: string;
  version: number;
  document: MappingDocument;
  translate(c: UnifiedCase): Translation;
  /** The route's own reverse table, when the mapping has one. */
  statusFor(d: DepartmentId, departmentStatus: string): MappableStatus | undefined;
}

const valueSpecSchema = {
  $id: 'valueSpec',
  type: 'object',
  additionalProperties: false,
  properties: {
    path: { type: 'string', minLength: 1, maxLength: 200 },
    const: { type: ['string', 'number', 'boolean'] },
    default: { type: ['string', 'number', 'boolean'] },
    required: { type: 'boolean' },
    table: {
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'object', additionalProperties: { type: 'string' }, minProperties: 1 },
      ],
    },
    date: { type: 'string', minLength: 1, maxLength: 40 },
    amount: {
      type: 'object',
      additionalProperties: false,
      required: ['shift', 'places'],
      properties: { shift: { type: 'integer', minimum: -8, maximum: 8 }, places: { type: 'integer', minimum: 0, maximum: 8 } },
    },
    trim: { type: 'boolean' },
    maxLength: { type: 'integer', minimum: 1 },
    type: { enum: ['string', 'number', 'integer', 'boolean'] },
    case: { enum: ['upper', 'lower'] },
    halfWidth: { type: 'boolean' },
    when: { $ref: 'condition' },
    fields: { type: 'object', additionalProperties: { $ref: 'valueSpec' }, minProperties: 1 },
    list: {
      type: 'object',
      additionalProperties: false,
      required: ['path', 'item'],
      properties: { path: { type: 'string', minLength: 1, maxLength: 200 }, item: { $ref: 'valueSpec' }, maxItems: { type: 'integer', minimum: 1 } },
    },
    count: { type: 'string', minLength: 1, maxLength: 200 },
  },
} as const;

const scalar = { type: ['string', 'number', 'boolean'] };
/** Its shape (one test or one combinator per object) is checked when compiling, with clearer faults than oneOf gives. */
const conditionSchema = {
  $id: 'condition',
  type: 'object',
  additionalProperties: false,
  properties: {
    path: { type: 'string', minLength: 1, maxLength: 200 },
    equals: scalar,
    notEquals: scalar,
    in: { type: 'array', items: { type: ['string', 'number'] }, minItems: 1 },
    exists: { type: 'boolean' },
    all: { type: 'array', items: { $ref: 'condition' }, minItems: 1 },
    any: { type: 'array', items: { $ref: 'condition' }, minItems: 1 },
    not: { $ref: 'condition' },
  },
} as const;

/** The JSON Schema of a mapping document (published for admins' editors as well). */
export const mappingDocumentSchema = {
  $id: 'mappingDocument',
  type: 'object',
  additionalProperties: false,
  required: ['itemCode', 'routes'],
  properties: {
    itemCode: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
    itemName: { type: 'string', maxLength: 200 },
    description: { type: 'string', maxLength: 2000 },
    routes: {
      type: 'array',
      minItems: 1,
      maxItems: DEPARTMENTS.length,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['department', 'businessType', 'request'],
        properties: {
          department: { enum: [...DEPARTMENTS] },
          businessType: { type: 'string', minLength: 1, maxLength: 64 },
          when: { $ref: 'condition' },
          request: { type: 'object', additionalProperties: { $ref: 'valueSpec' } },
          statuses: { type: 'object', additionalProperties: { enum: [...MAPPABLE_STATUSES] }, minProperties: 1 },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
ajv.addSchema(conditionSchema);
ajv.addSchema(valueSpecSchema);
const validateDocument = ajv.compile<MappingDocument>(mappingDocumentSchema);

/** ajv's instancePath `/routes/0/request/a` → `routes[0].request.a`. */
export function pointerToPath(pointer: string): string {
  if (!pointer) return '';
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
}

export function ajvFaults(errors: ErrorObject[] | null | undefined, prefix = ''): ErrorDetail[] {
  return (errors ?? []).map((e) => {
    let path = pointerToPath(e.instancePath);
    let message = e.message ?? 'invalid';
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      path = path ? `${path}.${extra}` : extra;
      message = 'unknown field';
    } else if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      path = path ? `${path}.${missing}` : missing;
      message = 'is required';
    } else if (e.keyword === 'enum') {
      message = `must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`;
    }
    const full = prefix ? (path ? `${prefix}.${path}` : prefix) : path;
    return { path: full, code: e.keyword === 'additionalProperties' ? 'UNKNOWN_FIELD' : 'INVALID', message };
  });
}

type Segment = string | number;
const PATH_RE = /^[A-Za-z_$][\w$]*(?:\[\d+\])*(?:\.[A-Za-z_$][\w$]*(?:\[\d+\])*)*$/;

export function parsePath(path: string): Segment[] | null {
  if (!PATH_RE.test(path)) return null;
  const out: Segment[] = [];
  for (const part of path.split('.')) {
    const m = /^([^[]+)((?:\[\d+\])*)$/.exec(part)!;
    out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

function readPath(root: unknown, segs: Segment[]): unknown {
  let cur: unknown = root;
  for (const s of segs) {
    if (cur === null || typeof cur !== 'object') return undefined;
    // Own properties only: a path such as `constructor` or `__proto__` never reaches the prototype.
    if (!Object.prototype.hasOwnProperty.call(cur, s)) return undefined;
    cur = (cur as Record<string | number, unknown>)[s];
  }
  return cur;
}

const DATE_TOKEN = /YYYY|MM|DD|HH|mm|ss/g;

function dateParts(value: string): Record<string, string> | null {
  let m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (m) return { YYYY: m[1]!, MM: m[2]!, DD: m[3]!, HH: '00', mm: '00', ss: '00' };
  m = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/.exec(value);
  if (!m) return null;
  const t = Date.parse(value);
  if (Number.isNaN(t)) return null;
  const bj = new Date(t + 8 * 3600_000).toISOString();
  return { YYYY: bj.slice(0, 4), MM: bj.slice(5, 7), DD: bj.slice(8, 10), HH: bj.slice(11, 13), mm: bj.slice(14, 16), ss: bj.slice(17, 19) };
}

/** Where a value is read: the whole case, the current element of a list, and that element's path. */
interface Scope {
  root: UnifiedCase;
  here: unknown;
  /** Path of `here` in the case (for faults), '' at the top. */
  at: string;
}

type Producer = (scope: Scope, faults: ErrorDetail[]) => unknown;
type Test = (scope: Scope) => boolean;

const CASE_PREFIX = '$case.';

/** Compiles a field path; `$case.` paths read from the whole case, others from the current scope. */
function compileRead(path: string, where: string, docFaults: ErrorDetail[]): { read: (s: Scope) => unknown; describe: (s: Scope) => string } | null {
  const fromRoot = path.startsWith(CASE_PREFIX);
  const rest = fromRoot ? path.slice(CASE_PREFIX.length) : path;
  const segs = parsePath(rest);
  if (!segs) {
    docFaults.push({ path: where, code: 'BAD_PATH', message: `"${path}" is not a field path` });
    return null;
  }
  return {
    read: (s) => readPath(fromRoot ? s.root : s.here, segs),
    describe: (s) => (fromRoot || !s.at ? rest : `${s.at}.${rest}`),
  };
}

function sameScalar(a: unknown, b: unknown): boolean {
  return a === b || (typeof a !== 'object' && a !== undefined && a !== null && String(a) === String(b));
}

function compileCondition(c: Condition, where: string, docFaults: ErrorDetail[]): Test {
  const keys = Object.keys(c);
  if ('all' in c || 'any' in c || 'not' in c) {
    if (keys.length !== 1) {
      docFaults.push({ path: where, code: 'BAD_CONDITION', message: 'all, any and not stand alone in their object' });
      return () => false;
    }
    if ('all' in c) {
      const parts = c.all.map((x, i) => compileCondition(x, `${where}.all[${i}]`, docFaults));
      return (s) => parts.every((t) => t(s));
    }
    if ('any' in c) {
      const parts = c.any.map((x, i) => compileCondition(x, `${where}.any[${i}]`, docFaults));
      return (s) => parts.some((t) => t(s));
    }
    const inner = compileCondition(c.not, `${where}.not`, docFaults);
    return (s) => !inner(s);
  }
  const ops = keys.filter((k) => k !== 'path');
  if (!('path' in c) || ops.length !== 1) {
    docFaults.push({ path: where, code: 'BAD_CONDITION', message: 'a test needs a path and exactly one of equals, notEquals, in, exists' });
    return () => false;
  }
  const r = compileRead(c.path, `${where}.path`, docFaults);
  if (!r) return () => false;
  const present = (v: unknown) => v !== undefined && v !== null && v !== '';
  if (c.equals !== undefined) {
    const want = c.equals;
    return (s) => sameScalar(r.read(s), want);
  }
  if (c.notEquals !== undefined) {
    const not = c.notEquals;
    return (s) => !sameScalar(r.read(s), not);
  }
  if (c.in !== undefined) {
    const set = c.in;
    return (s) => {
      const v = r.read(s);
      return set.some((x) => sameScalar(v, x));
    };
  }
  const want = c.exists!;
  return (s) => present(r.read(s)) === want;
}

/** Full-width ASCII forms (U+FF01–FF5E) and the ideographic space become half-width. */
function toHalfWidth(v: string): string {
  return v.replace(/[\uFF01-\uFF5E]/g, (ch) => String.fromCharCode(ch.charCodeAt(0) - 0xfee0)).replace(/\u3000/g, ' ');
}

/** Compiles one value spec; `where` is the spec's own location in the document, for faults. */
function compileValue(spec: ValueSpec, where: string, docFaults: ErrorDetail[]): Producer {
  const sources = [spec.path, spec.const, spec.fields, spec.list, spec.count].filter((x) => x !== undefined).length;
  if (sources === 0) docFaults.push({ path: where, code: 'NO_SOURCE', message: 'needs one of path, const, fields, list or count' });
  if (sources > 1) docFaults.push({ path: where, code: 'AMBIGUOUS_SOURCE', message: 'path, const, fields, list and count exclude each other' });
  const when = spec.when ? compileCondition(spec.when, `${where}.when`, docFaults) : null;
  const inner = compileSource(spec, where, docFaults);
  return when ? (s, f) => (when(s) ? inner(s, f) : undefined) : inner;
}

function compileSource(spec: ValueSpec, where: string, docFaults: ErrorDetail[]): Producer {
  if (spec.fields) {
    const children = Object.entries(spec.fields).map(([k, s]) => [k, compileValue(s, `${where}.fields.${k}`, docFaults)] as const);
    return (scope, faults) => {
      const out: Record<string, unknown> = {};
      for (const [k, p] of children) {
        const v = p(scope, faults);
        if (v !== undefined) out[k] = v;
      }
      if (Object.keys(out).length === 0) {
        if (spec.required) faults.push({ path: scope.at || where, code: 'REQUIRED', message: `no field of this group has a value (${where})` });
        return undefined;
      }
      return out;
    };
  }

  if (spec.list) {
    const src = compileRead(spec.list.path, `${where}.list.path`, docFaults);
    const item = compileValue(spec.list.item, `${where}.list.item`, docFaults);
    const max = spec.list.maxItems;
    return (scope, faults) => {
      if (!src) return undefined;
      const v = src.read(scope);
      const base = src.describe(scope);
      let elements: { here: unknown; at: string }[];
      if (Array.isArray(v)) elements = v.map((e, i) => ({ here: e, at: `${base}[${i}]` }));
      else if (v && typeof v === 'object') elements = Object.entries(v).map(([key, value]) => ({ here: { key, value }, at: `${base}.${key}` }));
      else elements = [];
      if (max !== undefined && elements.length > max) {
        faults.push({ path: base, code: 'TOO_MANY', message: `has ${elements.length} entries; the department takes at most ${max} (${where})` });
        return undefined;
      }
      const out = elements.map((e) => item({ root: scope.root, here: e.here, at: e.at }, faults)).filter((x) => x !== undefined);
      if (out.length === 0) {
        if (spec.required) faults.push({ path: base, code: 'REQUIRED', message: `required by the mapping (${where})` });
        return undefined;
      }
      return out;
    };
  }

  if (spec.count !== undefined) {
    const src = compileRead(spec.count, `${where}.count`, docFaults);
    return (scope) => {
      const v = src?.read(scope);
      return Array.isArray(v) ? v.length : v && typeof v === 'object' ? Object.keys(v).length : 0;
    };
  }

  const reader = spec.path !== undefined ? compileRead(spec.path, `${where}.path`, docFaults) : null;
  let table: Readonly<Record<string, string>> | undefined;
  if (typeof spec.table === 'string') {
    table = SHARED_TABLES[spec.table];
    if (!table) docFaults.push({ path: `${where}.table`, code: 'UNKNOWN_TABLE', message: `no shared table "${spec.table}"` });
  } else if (spec.table) table = spec.table;
  if (spec.date !== undefined && !DATE_TOKEN.test(spec.date))
    docFaults.push({ path: `${where}.date`, code: 'BAD_DATE_FORMAT', message: 'a date format needs at least one of YYYY MM DD HH mm ss' });
  DATE_TOKEN.lastIndex = 0;

  return (scope, faults) => {
    const source = reader ? reader.describe(scope) : scope.at || '(const)';
    let v: unknown = spec.const !== undefined ? spec.const : reader ? reader.read(scope) : undefined;
    if (typeof v === 'string') {
      if (spec.halfWidth) v = toHalfWidth(v as string);
      if (spec.trim) v = (v as string).trim();
    }
    if (v === undefined || v === null || v === '') v = spec.default;
    if (v === undefined || v === null || v === '') {
      if (spec.required) faults.push({ path: source, code: 'REQUIRED', message: `required by the mapping (${where})` });
      return undefined;
    }
    if (table) {
      // Own entries only: a value such as "constructor" never finds the prototype.
      const hit = Object.hasOwn(table, String(v)) ? table[String(v)] : undefined;
      if (hit === undefined) {
        faults.push({ path: source, code: 'NO_CODE', message: `value has no entry in the code table of ${where}` });
        return undefined;
      }
      v = hit;
    }
    if (spec.date !== undefined) {
      const parts = typeof v === 'string' ? dateParts(v) : null;
      if (!parts) {
        faults.push({ path: source, code: 'BAD_DATE', message: 'is not an ISO 8601 date or date-time' });
        return undefined;
      }
      v = spec.date.replace(DATE_TOKEN, (t) => parts[t]!);
    }
    if (spec.amount) {
      try {
        v = shiftDecimal(String(v), spec.amount.shift, spec.amount.places);
      } catch (e) {
        if (!(e instanceof DecimalFormatError)) throw e;
        faults.push({ path: source, code: 'BAD_AMOUNT', message: e.message });
        return undefined;
      }
    }
    switch (spec.type) {
      case 'string':
        v = typeof v === 'object' ? JSON.stringify(v) : String(v);
        break;
      case 'number':
      case 'integer': {
        const n = typeof v === 'number' ? v : Number(v);
        if (!Number.isFinite(n) || (spec.type === 'integer' && !Number.isInteger(n))) {
          faults.push({ path: source, code: 'BAD_NUMBER', message: `is not ${spec.type === 'integer' ? 'an integer' : 'a number'}` });
          return undefined;
        }
        v = n;
        break;
      }
      case 'boolean':
        if (typeof v !== 'boolean') {
          faults.push({ path: source, code: 'BAD_BOOLEAN', message: 'is not true or false' });
          return undefined;
        }
    }
    if (spec.case && typeof v === 'string') v = spec.case === 'upper' ? v.toUpperCase() : v.toLowerCase();
    if (spec.maxLength !== undefined && typeof v === 'string' && [...v].length > spec.maxLength) {
      faults.push({ path: source, code: 'TOO_LONG', message: `is longer than ${spec.maxLength} characters (${where})` });
      return undefined;
    }
    return v;
  };
}

export type CompileResult = { ok: true; mapping: CompiledMapping } | { ok: false; faults: ErrorDetail[] };

/** Validates a parsed document and compiles it. Every fault comes back, each with its path. */
export function compileMapping(doc: unknown, version: number): CompileResult {
  if (!validateDocument(doc)) return { ok: false, faults: ajvFaults(validateDocument.errors) };
  const d: MappingDocument = doc;
  const faults: ErrorDetail[] = [];
  const seen = new Set<string>();
  const routes = d.routes.map((r, i) => {
    if (seen.has(r.department))
      faults.push({ path: `routes[${i}].department`, code: 'DUPLICATE_ROUTE', message: `a second route to ${r.department}` });
    seen.add(r.department);
    const when = r.when ? compileCondition(r.when, `routes[${i}].when`, faults) : null;
    const fields = Object.entries(r.request).map(([k, s]) => [k, compileValue(s, `routes[${i}].request.${k}`, faults)] as const);
    return { department: r.department, businessType: r.businessType, when, fields, statuses: r.statuses ?? {} };
  });
  if (faults.length) return { ok: false, faults };
  const document = structuredClone(d);
  return {
    ok: true,
    mapping: {
      itemCode: d.itemCode,
      version,
      document,
      translate(c) {
        const caseFaults: ErrorDetail[] = [];
        const scope: Scope = { root: c, here: c, at: '' };
        const out: TranslatedRoute[] = [];
        for (const r of routes) {
          if (r.when && !r.when(scope)) continue;
          const payload: Record<string, unknown> = {};
          for (const [k, p] of r.fields) {
            const v = p(scope, caseFaults);
            if (v !== undefined) payload[k] = v;
          }
          out.push({ department: r.department, businessType: r.businessType, payload });
        }
        if (!caseFaults.length && out.length === 0)
          caseFaults.push({ path: 'itemCode', code: 'NO_ROUTE', message: `no route of item ${d.itemCode} applies to this case` });
        return caseFaults.length ? { ok: false, faults: dedupeFaults(caseFaults) } : { ok: true, routes: out };
      },
      statusFor(dept, departmentStatus) {
        const r = routes.find((x) => x.department === dept);
        return r && Object.hasOwn(r.statuses, departmentStatus) ? r.statuses[departmentStatus] : undefined;
      },
    },
  };
}

function dedupeFaults(faults: ErrorDetail[]): ErrorDetail[] {
  const seen = new Set<string>();
  return faults.filter((f) => {
    const k = `${f.path}|${f.code}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
