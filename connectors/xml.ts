/**
 * XML in and out for the SOAP and GBK departments. Answers are hostile input: a DOCTYPE or entity
 * declaration is refused before any parsing (no expansion can happen), as is a body over the
 * configured size; only the five predefined entities and character references are decoded.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Characters XML 1.0 cannot carry at all (control characters other than tab, LF, CR). */
export function hasXmlIllegalChars(s: string): boolean {
  return /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/.test(s);
}

export type XmlParseResult = { ok: true; doc: Record<string, unknown> } | { ok: false; reason: string };

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true, // safe: DOCTYPE (and so any entity definition) is refused first
  htmlEntities: false,
  allowBooleanAttributes: false,
  isArray: (name) => name === 'item' || name === 'cert' || name === 'XX',
});

export function parseXmlSafely(text: string, maxChars: number): XmlParseResult {
  if (text.length > maxChars) return { ok: false, reason: `answer larger than ${maxChars} characters` };
  if (/<!DOCTYPE/i.test(text)) return { ok: false, reason: 'answer carries a DOCTYPE (refused unparsed: no entity expansion)' };
  if (/<!ENTITY/i.test(text)) return { ok: false, reason: 'answer declares an entity (refused unparsed)' };
  const valid = XMLValidator.validate(text);
  if (valid !== true) return { ok: false, reason: `answer is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})` };
  try {
    const doc = parser.parse(text) as Record<string, unknown>;
    return { ok: true, doc };
  } catch (e) {
    return { ok: false, reason: `answer could not be parsed: ${(e as Error).message}` };
  }
}

/** Text content of a parsed element, whether it came as a string or as { '#text', '@_…' }. */
export function text(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v && typeof v === 'object' && '#text' in v) return String((v as Record<string, unknown>)['#text']);
  if (v && typeof v === 'object' && Object.keys(v).every((k) => k.startsWith('@_'))) return '';
  return undefined;
}

export function child(v: unknown, name: string): unknown {
  return v && typeof v === 'object' ? (v as Record<string, unknown>)[name] : undefined;
}

/**
 * The e-licence envelope (e-licence.md) from its XML form (dept-si.md `si:licence`, dept-ps.md
 * `ZZ`): elements of the same names, signature attributes, certificates/cert.
 */
export function licenceFromXml(x: unknown): Record<string, unknown> | null {
  if (!x || typeof x !== 'object') return null;
  const t = (n: string) => text(child(x, n)) ?? '';
  const sig = child(x, 'signature');
  const certs = child(child(x, 'certificates'), 'cert');
  return {
    licenceId: t('licenceId'),
    typeCode: t('typeCode'),
    typeName: t('typeName'),
    holder: { name: t('holderName'), idType: t('holderIdType'), idNumber: t('holderIdNumber') },
    issuer: { name: t('issuerName'), code: t('issuerCode') },
    issueDate: t('issueDate'),
    validFrom: t('validFrom'),
    validTo: t('validTo'),
    file: { name: t('fileName'), mediaType: t('mediaType'), base64: t('fileBase64').replace(/\s+/g, '') },
    signature: {
      algorithm: String(child(sig, '@_algorithm') ?? ''),
      format: String(child(sig, '@_format') ?? ''),
      value: (text(sig) ?? '').replace(/\s+/g, ''),
      certificates: (Array.isArray(certs) ? certs : certs === undefined ? [] : [certs]).map((c) => (text(c) ?? '').replace(/\s+/g, '')),
    },
  };
}

/** yyyyMMddHHmmss in Beijing time → ms since epoch; NaN if it is not one. */
export function beijingCompactTime(s: string | undefined): number {
  const m = s ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(s) : null;
  if (!m) return NaN;
  return Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}+08:00`);
}
