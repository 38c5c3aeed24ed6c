/**
 * 人社 social security (specs/dept-si.md, si.wsdl): SOAP 1.1 document/literal with WS-Security
 * UsernameToken (PasswordDigest); results only by polling queryResult.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AxiosResponse } from 'axios';
import type { Logger } from 'pino';
import type { RouteStatus } from '../../model/case.js';
import type { DepartmentEvent } from '../../model/department-event.js';
import type { DepartmentFault, Outcome } from '../../model/outcome.js';
import { createHttp, transportMessage } from '../http.js';
import type { Connector, PushContext, PushReceipt, Receipt, RequestPreview, SubmitRequest } from '../types.js';
import { chunkCount, streamChunks } from '../material-stream.js';
import { beijingCompactTime, child, escapeXml, hasXmlIllegalChars, licenceFromXml, parseXmlSafely, text } from '../xml.js';

export const SOAP_NS = 'http://schemas.xmlsoap.org/soap/envelope/';
export const SI_NS = 'urn:cn:gov:si:business:v1';
const WSSE_NS = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd';
const WSU_NS = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd';
const PASSWORD_DIGEST = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest';
const BASE64_BINARY = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary';
const PATH = '/services/SiBusinessService';
/** dept-si.md: at most 1 MiB per chunk before Base64. */
const SI_CHUNK = 1024 * 1024;

export interface SiConnectorConfig {
  baseUrl: string;
  username: string;
  password: string;
  timeoutMs: number;
  maxAnswerBytes: number;
}

export const SI_STATUS: Readonly<Record<string, RouteStatus>> = { '01': 'SUBMITTED', '02': 'IN_REVIEW', '03': 'APPROVED', '04': 'REJECTED', '05': 'RETURNED' };

/** DIGEST = Base64(SHA-1(nonce bytes ‖ Created ‖ password)) — WS-Security UsernameToken Profile 1.0. */
export function passwordDigest(nonce: Buffer, created: string, password: string): string {
  return createHash('sha1').update(Buffer.concat([nonce, Buffer.from(created, 'utf8'), Buffer.from(password, 'utf8')])).digest('base64');
}

export function securityHeader(username: string, password: string, now = new Date(), nonce = randomBytes(16)): string {
  const created = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return (
    `<wsse:Security soap:mustUnderstand="1" xmlns:wsse="${WSSE_NS}" xmlns:wsu="${WSU_NS}">` +
    `<wsse:UsernameToken><wsse:Username>${escapeXml(username)}</wsse:Username>` +
    `<wsse:Password Type="${PASSWORD_DIGEST}">${passwordDigest(nonce, created, password)}</wsse:Password>` +
    `<wsse:Nonce EncodingType="${BASE64_BINARY}">${nonce.toString('base64')}</wsse:Nonce>` +
    `<wsu:Created>${created}</wsu:Created></wsse:UsernameToken></wsse:Security>`
  );
}

export function envelope(security: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="${SOAP_NS}" xmlns:si="${SI_NS}"><soap:Header>${security}</soap:Header><soap:Body>${body}</soap:Body></soap:Envelope>`;
}

const fault = (code: string, message: string, departmentCode?: string): DepartmentFault =>
  departmentCode === undefined ? { code, message } : { code, message, departmentCode };

class PayloadError extends Error {}

function el(name: string, v: unknown, path: string, required: boolean): string {
  if (v === undefined || v === null || v === '') {
    if (required) throw new PayloadError(`${path} is required by si.wsdl but the mapping gave none`);
    return '';
  }
  const s = String(v);
  if (hasXmlIllegalChars(s)) throw new PayloadError(`${path} holds a character XML cannot carry`);
  return `<si:${name}>${escapeXml(s)}</si:${name}>`;
}

/** submitBusinessRequest in the WSDL's element order, whatever order the mapping produced. */
export function submitBody(req: SubmitRequest): string {
  const p = req.payload;
  const person = (p.person ?? {}) as Record<string, unknown>;
  const unit = p.unit as Record<string, unknown> | undefined;
  const items = Array.isArray(p.items) ? (p.items as { key?: unknown; value?: unknown }[]) : [];
  const count = p.materialCount ?? 0;
  if (!Number.isInteger(Number(count)) || Number(count) < 0 || Number(count) > 200) throw new PayloadError('materialCount must be 0..200');
  let xml = `<si:submitBusinessRequest>${el('serialNo', req.key, 'serialNo', true)}${el('businessType', req.businessType, 'businessType', true)}<si:person>`;
  for (const [f, req2] of [['aac002', true], ['aac003', true], ['aac004', true], ['aac006', true], ['aae005', false], ['aae006', false]] as const) xml += el(f, person[f], `person.${f}`, req2);
  xml += '</si:person>';
  if (unit) xml += `<si:unit>${el('aab004', unit.aab004, 'unit.aab004', true)}${el('aab998', unit.aab998, 'unit.aab998', true)}</si:unit>`;
  if (items.length) {
    xml += '<si:items>';
    items.forEach((it, i) => {
      const key = String(it.key ?? '');
      const value = String(it.value ?? '');
      if (!key) throw new PayloadError(`items[${i}].key is required`);
      if (hasXmlIllegalChars(key) || hasXmlIllegalChars(value)) throw new PayloadError(`items[${i}] holds a character XML cannot carry`);
      xml += `<si:item key="${escapeXml(key)}">${escapeXml(value)}</si:item>`;
    });
    xml += '</si:items>';
  }
  return `${xml}<si:materialCount>${Number(count)}</si:materialCount></si:submitBusinessRequest>`;
}

type SoapAnswer = { ok: true; body: Record<string, unknown> } | { ok: false; outcome: Outcome<never> };

export class SiConnector implements Connector {
  readonly department = 'si' as const;
  readonly resultMode = 'poll' as const;
  private readonly http;

  constructor(
    private readonly cfg: SiConnectorConfig,
    private readonly log: Logger,
  ) {
    this.http = createHttp({ baseUrl: cfg.baseUrl, timeoutMs: cfg.timeoutMs, maxAnswerBytes: cfg.maxAnswerBytes });
  }

  async close(): Promise<void> {
    this.http.close();
  }

  preview(req: SubmitRequest): { ok: true; request: RequestPreview } | { ok: false; fault: { code: string; message: string } } {
    let body: string;
    try {
      body = submitBody(req);
    } catch (e) {
      if (e instanceof PayloadError) return { ok: false, fault: { code: 'MAPPING_INCOMPLETE', message: e.message } };
      throw e;
    }
    // Nonce, Created and digest are new on every request: the preview shows their places.
    const security =
      `<wsse:Security soap:mustUnderstand="1" xmlns:wsse="${WSSE_NS}" xmlns:wsu="${WSU_NS}"><wsse:UsernameToken><wsse:Username>${escapeXml(this.cfg.username)}</wsse:Username>` +
      `<wsse:Password Type="${PASSWORD_DIGEST}">&lt;digest&gt;</wsse:Password><wsse:Nonce EncodingType="${BASE64_BINARY}">&lt;nonce&gt;</wsse:Nonce><wsu:Created>&lt;created&gt;</wsu:Created></wsse:UsernameToken></wsse:Security>`;
    return {
      ok: true,
      request: {
        method: 'POST',
        url: this.cfg.baseUrl.replace(/\/+$/, '') + PATH,
        headers: { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: '"urn:si:submitBusiness"' },
        body: envelope(security, body),
        encoding: 'utf-8',
      },
    };
  }

  /** One SOAP call: the answer's body element, or the outcome of a fault, an outage or garbage. */
  private async call(operation: string, body: string): Promise<SoapAnswer> {
    let res: AxiosResponse;
    try {
      res = await this.http.client.post(PATH, envelope(securityHeader(this.cfg.username, this.cfg.password), body), {
        headers: { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: `"urn:si:${operation}"` },
      });
    } catch (e) {
      return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_UNREACHABLE', transportMessage(e)) } };
    }
    const raw = typeof res.data === 'string' ? res.data : '';
    const parsed = parseXmlSafely(raw, this.cfg.maxAnswerBytes);
    if (!parsed.ok) {
      if (res.status >= 500) return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', `HTTP ${res.status}: ${parsed.reason}`, String(res.status)) } };
      return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', parsed.reason, String(res.status)) } };
    }
    const soapBody = child(child(parsed.doc, 'Envelope'), 'Body');
    if (!soapBody || typeof soapBody !== 'object') return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `HTTP ${res.status}: not a SOAP envelope`, String(res.status)) } };
    const f = child(soapBody, 'Fault');
    if (f) {
      const code = text(child(f, 'faultcode')) ?? '';
      const msg = text(child(f, 'faultstring')) ?? 'SOAP fault';
      // A wrong password or a clock out of step: the configuration, not this case, needs fixing.
      if (/FailedAuthentication/.test(code)) return { ok: false, outcome: { kind: 'auth', fault: fault('DEPT_AUTH_REFUSED', msg, code) } };
      if (/(^|:)Client$/.test(code)) return { ok: false, outcome: { kind: 'permanent', fault: fault('DEPT_REJECTED_DATA', msg, code) } };
      return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', msg, code || String(res.status)) } };
    }
    const answer = child(soapBody, `${operation}Response`);
    if (!answer || typeof answer !== 'object') return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `no ${operation}Response in the answer`, String(res.status)) } };
    return { ok: true, body: answer as Record<string, unknown> };
  }

  async submit(req: SubmitRequest): Promise<Outcome<Receipt>> {
    let body: string;
    try {
      body = submitBody(req);
    } catch (e) {
      if (e instanceof PayloadError) return { kind: 'permanent', fault: fault('MAPPING_INCOMPLETE', e.message) };
      throw e;
    }
    const a = await this.call('submitBusiness', body);
    if (!a.ok) return a.outcome;
    const code = text(a.body.resultCode) ?? '';
    const msg = text(a.body.resultMsg) || code || 'no resultMsg';
    const acceptNo = text(a.body.acceptNo);
    switch (code) {
      case '0':
      case 'E2001':
        if (!acceptNo) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `${code} without acceptNo`, code) };
        return { kind: code === '0' ? 'ok' : 'duplicate', value: { receiptNo: acceptNo } };
      case 'E1001':
        return { kind: 'permanent', fault: fault('DEPT_REJECTED_DATA', msg, code) };
      case 'E1002':
        return { kind: 'permanent', fault: fault('DEPT_REFUSED', msg, code) };
      case 'E9001':
      case 'E9999':
        return { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', msg, code) };
      default:
        return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `resultCode ${JSON.stringify(code)} is not in the spec: ${msg}`, code || 'none') };
    }
  }

  /**
   * uploadMaterial in chunks of 1 MiB (Base64 in the SOAP body), after asking queryUpload which
   * chunks the department already holds. The last chunk — the one that completes — goes only after
   * the whole file matched its declared SHA-256.
   */
  async pushMaterial(ctx: PushContext): Promise<Outcome<PushReceipt>> {
    const m = ctx.material;
    const total = chunkCount(m.size, SI_CHUNK);
    const ids = `<si:acceptNo>${escapeXml(ctx.receiptNo)}</si:acceptNo><si:materialId>${escapeXml(m.id)}</si:materialId>`;
    const q = await this.call('queryUpload', `<si:queryUploadRequest>${ids}</si:queryUploadRequest>`);
    if (!q.ok) return q.outcome;
    const qc = text(q.body.resultCode) ?? '';
    const held = new Set<number>();
    if (qc === '0') {
      for (const x of (text(q.body.receivedChunks) ?? '').split(',')) if (/^\d+$/.test(x.trim())) held.add(Number(x.trim()));
    } else {
      const o = this.uploadAnswer(qc, text(q.body.resultMsg) || qc);
      if (o) return o;
    }
    let completed = false;
    let stop: Outcome<never> | null = null;
    const streamed = await streamChunks(await m.open(), m, SI_CHUNK, held, async (i, chunk, isLast) => {
      const body =
        `<si:uploadMaterialRequest>${ids}<si:fileName>${escapeXml(m.fileName)}</si:fileName><si:chunkIndex>${i}</si:chunkIndex><si:chunkCount>${total}</si:chunkCount>` +
        `<si:sha256>${m.sha256.toLowerCase()}</si:sha256><si:content>${chunk.toString('base64')}</si:content></si:uploadMaterialRequest>`;
      const a = await this.call('uploadMaterial', body);
      if (!a.ok) return { ok: false, stop: (stop = a.outcome) };
      const code = text(a.body.resultCode) ?? '';
      if (code !== '0') return { ok: false, stop: (stop = this.uploadAnswer(code, text(a.body.resultMsg) || code) ?? { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `uploadMaterial answered ${code}`, code) }) };
      if (isLast) completed = text(a.body.complete) === 'true';
      return { ok: true };
    });
    if (!streamed.ok) return 'mismatch' in streamed ? { kind: 'permanent', fault: streamed.mismatch } : stop!;
    // Every chunk was already held (a re-run after the last one went): ask whether it is complete.
    if (!completed && streamed.sent === 0) completed = held.size >= total;
    if (!completed) return { kind: 'retry', fault: fault('DEPT_UPLOAD_INCOMPLETE', 'the department does not report the file complete; missing chunks are sent again') };
    return { kind: 'ok', value: { sent: streamed.sent, skipped: streamed.skipped } };
  }

  private uploadAnswer(code: string, msg: string): Outcome<never> | null {
    switch (code) {
      case 'E3001':
        // The department discarded the chunks: the next attempt starts the material again.
        return { kind: 'retry', fault: fault('DEPT_CHECKSUM_MISMATCH', msg, code) };
      case 'E3002':
        return { kind: 'permanent', fault: fault('DEPT_UNKNOWN_RECEIPT', msg, code) };
      case 'E1001':
        return { kind: 'permanent', fault: fault('DEPT_REJECTED_DATA', msg, code) };
      case 'E9001':
      case 'E9999':
        return { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', msg, code) };
      default:
        return null;
    }
  }

  async fetchResult(receiptNo: string): Promise<Outcome<DepartmentEvent>> {
    if (hasXmlIllegalChars(receiptNo)) return { kind: 'permanent', fault: fault('DEPT_BAD_ANSWER', 'acceptNo holds characters XML cannot carry') };
    const a = await this.call('queryResult', `<si:queryResultRequest><si:acceptNo>${escapeXml(receiptNo)}</si:acceptNo></si:queryResultRequest>`);
    if (!a.ok) return a.outcome;
    const code = text(a.body.resultCode) ?? '';
    const msg = text(a.body.resultMsg) || code;
    if (code === 'E9001' || code === 'E9999') return { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', msg, code) };
    if (code !== '0') return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `queryResult answered ${code}: ${msg}`, code) };
    const status = text(a.body.status) ?? '';
    if (!Object.hasOwn(SI_STATUS, status)) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `unknown status ${JSON.stringify(status)}`, code) };
    const at = beijingCompactTime(text(a.body.statusTime));
    if (Number.isNaN(at)) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', 'statusTime is missing or not yyyyMMddHHmmss', code) };
    return {
      kind: 'ok',
      value: {
        receiptNo,
        status: SI_STATUS[status]!,
        departmentStatus: status,
        occurredAt: at,
        opinion: text(a.body.opinion) || null,
        licence: a.body.licence ? licenceFromXml(a.body.licence) : null,
        source: 'poll',
      },
    };
  }
}
