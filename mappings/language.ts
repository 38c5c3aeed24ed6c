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
  /** A nested object built from its own specs. */
  fields?: Record<string, ValueSpec>;
}

export interface RouteSpec {
  department: DepartmentId;
  /** The department-side business type (matter_code, businessType, bizType, YWLX). */
  businessType: string;
  request: Record<string, ValueSpec>;
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
    fields: { type: 'object', additionalProperties: { $ref: 'valueSpec' }, minProperties: 1 },
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
          request: { type: 'object', additionalProperties: { $ref: 'valueSpec' } },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
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

type Producer = (c: UnifiedCase, faults: ErrorDetail[]) => unknown;

/** Compiles one value spec; `where` is the spec's own location in the document, for faults. */
function compileValue(spec: ValueSpec, where: string, docFaults: ErrorDetail[]): Producer {
  const hasSource = spec.path !== undefined || spec.const !== undefined || spec.fields !== undefined;
  if (!hasSource) docFaults.push({ path: where, code: 'NO_SOURCE', message: 'needs one of path, const or fields' });
  if ([spec.path, spec.const, spec.fields].filter((x) => x !== undefined).length > 1)
    docFaults.push({ path: where, code: 'AMBIGUOUS_SOURCE', message: 'path, const and fields exclude each other' });

  if (spec.fields) {
    const children = Object.entries(spec.fields).map(([k, s]) => [k, compileValue(s, `${where}.fields.${k}`, docFaults)] as const);
    return (c, faults) => {
      const out: Record<string, unknown> = {};
      for (const [k, p] of children) {
        const v = p(c, faults);
        if (v !== undefined) out[k] = v;
      }
      if (Object.keys(out).length === 0) {
        if (spec.required) faults.push({ path: where, code: 'REQUIRED', message: 'no field of this group has a value' });
        return undefined;
      }
      return out;
    };
  }

  const segs = spec.path !== undefined ? parsePath(spec.path) : null;
  if (spec.path !== undefined && !segs) docFaults.push({ path: `${where}.path`, code: 'BAD_PATH', message: `"${spec.path}" is not a field path` });
  let table: Readonly<Record<string, string>> | undefined;
  if (typeof spec.table === 'string') {
    table = SHARED_TABLES[spec.table];
    if (!table) docFaults.push({ path: `${where}.table`, code: 'UNKNOWN_TABLE', message: `no shared table "${spec.table}"` });
  } else if (spec.table) table = spec.table;
  if (spec.date !== undefined && !DATE_TOKEN.test(spec.date))
    docFaults.push({ path: `${where}.date`, code: 'BAD_DATE_FORMAT', message: 'a date format needs at least one of YYYY MM DD HH mm ss' });
  DATE_TOKEN.lastIndex = 0;
  const source = spec.path ?? '(const)';

  return (c, faults) => {
    let v: unknown = spec.const !== undefined ? spec.const : segs ? readPath(c, segs) : undefined;
    if (typeof v === 'string' && spec.trim) v = v.trim();
    if (v === undefined || v === null || v === '') v = spec.default;
    if (v === undefined || v === null || v === '') {
      if (spec.required) faults.push({ path: source, code: 'REQUIRED', message: `required by the mapping (${where})` });
      return undefined;
    }
    if (table) {
      const hit = table[String(v)];
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
    const fields = Object.entries(r.request).map(([k, s]) => [k, compileValue(s, `routes[${i}].request.${k}`, faults)] as const);
    return { department: r.department, businessType: r.businessType, fields };
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
        const out: TranslatedRoute[] = routes.map((r) => {
          const payload: Record<string, unknown> = {};
          for (const [k, p] of r.fields) {
            const v = p(c, caseFaults);
            if (v !== undefined) payload[k] = v;
          }
          return { department: r.department, businessType: r.businessType, payload };
        });
        return caseFaults.length ? { ok: false, faults: dedupeFaults(caseFaults) } : { ok: true, routes: out };
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
