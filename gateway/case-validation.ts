/**
 * Validation of a unified case (specs/platform-api.md): the shape first (400 with every fault's
 * path), then identifiers and their agreement (422 with every fault's path).
 */
import { Ajv } from 'ajv';
import * as ajvFormats from 'ajv-formats';
import type { UnifiedCase } from '../model/case.js';
import { GatewayError, type ErrorDetail } from '../model/errors.js';
import { beijingDate, checkIdCard, checkProjectCode, checkUscc, type IdFault } from '../model/identifiers.js';
import { ajvFaults } from '../mappings/language.js';

const str = (max: number, extra: Record<string, unknown> = {}) => ({ type: 'string', minLength: 1, maxLength: max, ...extra });
const MAX_MATERIAL = 2 * 1024 ** 3;

/** One archived e-material (platform-api.md): at most 2 GiB; sha256 and size are binding. */
export const materialSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'name', 'fileName', 'mediaType', 'url', 'sha256', 'size'],
  properties: {
    id: str(64, { pattern: '^[A-Za-z0-9_-]+$' }),
    name: str(200),
    fileName: str(255),
    mediaType: str(100),
    url: { type: 'string', format: 'uri', pattern: '^https?://' },
    sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    size: { type: 'integer', minimum: 0, maximum: MAX_MATERIAL },
  },
} as const;

export const unifiedCaseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['caseNo', 'itemCode', 'receivedAt', 'applicant'],
  properties: {
    caseNo: str(64, { pattern: '^[A-Za-z0-9_-]+$' }),
    itemCode: str(64, { pattern: '^[A-Za-z0-9_-]+$' }),
    itemName: str(200),
    channel: str(32),
    receivedAt: { type: 'string', format: 'date-time' },
    applicant: {
      type: 'object',
      additionalProperties: false,
      required: ['kind', 'name', 'idType', 'idNumber'],
      properties: {
        kind: { enum: ['person', 'legal'] },
        name: str(200),
        idType: { enum: ['ID_CARD', 'USCC', 'PASSPORT'] },
        idNumber: str(32),
        gender: { enum: ['male', 'female', 'unknown'] },
        birthDate: { type: 'string', format: 'date' },
        ethnicity: { type: 'string', pattern: '^\\d{2}$' },
        phone: str(32, { pattern: '^[0-9+() -]+$' }),
        address: str(500),
      },
    },
    organisation: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'uscc'],
      properties: {
        name: str(200),
        uscc: { type: 'string' },
        legalPerson: str(200),
        legalPersonIdNumber: str(32),
        address: str(500),
        phone: str(32, { pattern: '^[0-9+() -]+$' }),
      },
    },
    project: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'name'],
      properties: {
        code: { type: 'string' },
        name: str(300),
        totalInvestmentYuan: { type: 'string', pattern: '^\\d{1,15}(\\.\\d{1,2})?$' },
        site: str(500),
        startYear: { type: 'integer', minimum: 1900, maximum: 2200 },
      },
    },
    form: { type: 'object' },
    materials: {
      type: 'array',
      maxItems: 200,
      items: materialSchema,
    },
    callbackUrl: { type: 'string', format: 'uri', pattern: '^https?://' },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
// ajv-formats is CommonJS: its default export sits on .default under NodeNext.
(ajvFormats as unknown as { default: (a: Ajv) => Ajv }).default(ajv);
const validateShape = ajv.compile<UnifiedCase>(unifiedCaseSchema);
/** POST /v1/cases/{caseNo}/materials */
export const validateSupplementBody = ajv.compile({
  type: 'object',
  additionalProperties: false,
  required: ['department', 'materials'],
  properties: { department: { enum: ['si', 'tax', 'ps', 'inv'] }, materials: { type: 'array', minItems: 1, maxItems: 200, items: materialSchema } },
});

const ID_FAULT_TEXT: Record<IdFault, string> = {
  LENGTH: 'must be 18 characters',
  CHARACTERS: 'has a character outside the allowed set',
  BIRTH_DATE: 'holds a birth date that does not exist',
  BIRTH_DATE_IN_FUTURE: 'holds a birth date in the future',
  CHECK_DIGIT: 'check digit does not match',
  FORMAT: 'does not have the form NNNN-AAAAAA-BB-CC-NNNNNN',
};

const idFault = (path: string, f: IdFault): ErrorDetail => ({ path, code: f, message: `${path} ${ID_FAULT_TEXT[f]}` });

export interface ValidationOptions {
  usccExceptions: ReadonlySet<string>;
  now?: Date;
}

/** Throws a GatewayError (400 or 422) listing every fault, or returns the typed case. */
export function validateCase(body: unknown, o: ValidationOptions): UnifiedCase {
  if (!validateShape(body)) throw new GatewayError('VALIDATION_FAILED', 'the case does not match the unified case schema', ajvFaults(validateShape.errors));
  const c: UnifiedCase = body;
  const today = beijingDate(o.now);
  const faults: ErrorDetail[] = [];
  const a = c.applicant;
  if (a.idType === 'ID_CARD') {
    const r = checkIdCard(a.idNumber, today);
    if (!r.ok) faults.push(idFault('applicant.idNumber', r.fault));
    else {
      if (a.birthDate && a.birthDate !== r.info.birthDate)
        faults.push({ path: 'applicant.birthDate', code: 'BIRTH_DATE_MISMATCH', message: 'applicant.birthDate does not agree with the ID number' });
      if (a.gender && a.gender !== 'unknown' && a.gender !== r.info.gender)
        faults.push({ path: 'applicant.gender', code: 'GENDER_MISMATCH', message: 'applicant.gender does not agree with the ID number' });
    }
  } else if (a.idType === 'USCC') {
    const r = checkUscc(a.idNumber, o.usccExceptions);
    if (!r.ok) faults.push(idFault('applicant.idNumber', r.fault));
  }
  if (a.kind === 'legal' && a.idType !== 'USCC')
    faults.push({ path: 'applicant.idType', code: 'KIND_MISMATCH', message: 'a legal applicant is identified by its USCC' });
  if (c.organisation) {
    const r = checkUscc(c.organisation.uscc, o.usccExceptions);
    if (!r.ok) faults.push(idFault('organisation.uscc', r.fault));
    const lp = c.organisation.legalPersonIdNumber;
    // A legal person's number is checked only when it has the form of a 公民身份号码 (foreign legal persons use passports).
    if (lp && /^\d{17}[\dX]$/.test(lp)) {
      const r2 = checkIdCard(lp, today);
      if (!r2.ok) faults.push(idFault('organisation.legalPersonIdNumber', r2.fault));
    }
  }
  if (c.project) {
    const r = checkProjectCode(c.project.code);
    if (!r.ok) faults.push(idFault('project.code', r.fault));
  }
  const seen = new Set<string>();
  (c.materials ?? []).forEach((m, i) => {
    if (seen.has(m.id)) faults.push({ path: `materials[${i}].id`, code: 'DUPLICATE', message: `material id ${m.id} appears twice` });
    seen.add(m.id);
  });
  if (faults.length) throw new GatewayError('INVALID_IDENTIFIER', 'identifiers or their details do not hold', faults);
  return c;
}
