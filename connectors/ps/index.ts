/**
 * 公安 public security (specs/dept-ps.md): XML in GBK over mutual TLS, trusting only the
 * department's own CA; unique SEQ per request (a submission's SEQ is its idempotency key);
 * results only by polling JG_CX. A value GBK cannot encode is refused before sending, naming the
 * field — never sent as a substituted '?'.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AxiosResponse } from 'axios';
import iconv from 'iconv-lite';
import type { Logger } from 'pino';
import type { RouteStatus } from '../../model/case.js';
import type { DepartmentEvent } from '../../model/department-event.js';
import type { DepartmentFault, Outcome } from '../../model/outcome.js';
import { createHttp, transportMessage } from '../http.js';
import type { Connector, PushContext, PushReceipt, Receipt, RequestPreview, SubmitRequest } from '../types.js';
import { chunkCount, streamChunks } from '../material-stream.js';
import { beijingCompactTime, child, escapeXml, hasXmlIllegalChars, licenceFromXml, parseXmlSafely, text } from '../xml.js';

export interface PsConnectorConfig {
  baseUrl: string;
  senderCode: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  timeoutMs: number;
  maxAnswerBytes: number;
}

export const PS_STATUS: Readonly<Record<string, RouteStatus>> = { '1': 'SUBMITTED', '2': 'IN_REVIEW', '3': 'APPROVED', '4': 'REJECTED', '5': 'RETURNED' };
const PATH = '/gab/service';
/** dept-ps.md: at most 512 KiB per chunk before Base64. */
const PS_CHUNK = 512 * 1024;

const fault = (code: string, message: string, departmentCode?: string): DepartmentFault =>
  departmentCode === undefined ? { code, message } : { code, message, departmentCode };

export class PayloadError extends Error {
  constructor(
    readonly code: 'UNENCODABLE_CHARACTER' | 'MAPPING_INCOMPLETE',
    message: string,
  ) {
    super(message);
  }
}

/** True when every character survives GBK: iconv-lite would otherwise put '?' in its place. */
export function gbkEncodable(s: string): boolean {
  return iconv.decode(iconv.encode(s, 'gbk'), 'gbk') === s;
}

function value(v: unknown, path: string, required: boolean): string | null {
  if (v === undefined || v === null || v === '') {
    if (required) throw new PayloadError('MAPPING_INCOMPLETE', `${path} is required by dept-ps.md but the mapping gave none`);
    return null;
  }
  const s = String(v);
  if (hasXmlIllegalChars(s)) throw new PayloadError('MAPPING_INCOMPLETE', `${path} holds a character XML cannot carry`);
  if (!gbkEncodable(s)) {
    const bad = [...s].filter((ch) => !gbkEncodable(ch)).map((ch) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase()}`);
    throw new PayloadError('UNENCODABLE_CHARACTER', `${path} holds characters GBK cannot encode (${bad.join(', ')}); refused rather than sent as '?'`);
  }
  return s;
}

const tag = (name: string, v: string | null) => (v === null ? '' : `<${name}>${escapeXml(v)}</${name}>`);

/** HJ_SB's BODY from the mapping's fields, in the spec's order. */
export function hjsbBody(req: SubmitRequest): string {
  const p = req.payload;
  const sqr = (p.SQR ?? {}) as Record<string, unknown>;
  let xml = `<BODY>${tag('YWLX', value(req.businessType, 'YWLX', true))}<SQR>`;
  for (const [f, req2] of [['GMSFHM', true], ['XM', true], ['XB', true], ['MZ', false], ['CSRQ', true], ['LXDH', false], ['ZZ', false]] as const) xml += tag(f, value(sqr[f], `SQR.${f}`, req2));
  xml += '</SQR>';
  const xx = (p.KZXX as { XX?: unknown } | undefined)?.XX;
  if (Array.isArray(xx) && xx.length) {
    xml += '<KZXX>';
    xx.forEach((e: { DM?: unknown; value?: unknown }, i) => {
      const dm = value(e?.DM, `KZXX.XX[${i}].DM`, true)!;
      xml += `<XX DM="${escapeXml(dm)}">${escapeXml(value(e?.value, `KZXX.XX[${i}]`, false) ?? '')}</XX>`;
    });
    xml += '</KZXX>';
  }
  return `${xml}</BODY>`;
}

/** yyyyMMddHHmmss, Beijing time. */
function bjTime(ms: number): string {
  return new Date(ms + 8 * 3600_000).toISOString().slice(0, 19).replace(/[-T:]/g, '');
}

export function packet(sender: string, service: string, seq: string, body: string, nowMs = Date.now()): string {
  return `<?xml version="1.0" encoding="GBK"?><PACKET><HEAD><SENDER>${escapeXml(sender)}</SENDER><SERVICE>${service}</SERVICE><SEQ>${seq}</SEQ><TIME>${bjTime(nowMs)}</TIME></HEAD>${body}</PACKET>`;
}

/** A fresh SEQ for a query: 32 of [A-Za-z0-9], never reused. */
function newSeq(): string {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(32)].map((b) => a[b % 62]).join('');
}

/** Certificate verification failed on our side, or the server refused our client certificate. */
export function isTlsTrustFailure(e: unknown): boolean {
  const code = String((e as { code?: unknown })?.code ?? '');
  return (
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/.test(code) ||
    /^ERR_SSL_(SSLV3|TLSV1|TLSV13)_ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|CERTIFICATE_REQUIRED|ACCESS_DENIED|DECRYPT_ERROR|HANDSHAKE_FAILURE)$/.test(code)
  );
}

type Answer = { ok: true; ret: Record<string, unknown>; code: string; msg: string } | { ok: false; outcome: Outcome<never> };

export class PsConnector implements Connector {
  readonly department = 'ps' as const;
  readonly resultMode = 'poll' as const;
  private readonly http;

  constructor(
    private readonly cfg: PsConnectorConfig,
    private readonly log: Logger,
    agent?: https.Agent,
  ) {
    // The department's private CA only — not the system roots — and our client certificate.
    const httpsAgent =
      agent ?? new https.Agent({ keepAlive: true, maxSockets: 32, ca: readFileSync(cfg.caFile), cert: readFileSync(cfg.certFile), key: readFileSync(cfg.keyFile), rejectUnauthorized: true, minVersion: 'TLSv1.2' });
    this.http = createHttp({ baseUrl: cfg.baseUrl, timeoutMs: cfg.timeoutMs, maxAnswerBytes: cfg.maxAnswerBytes, httpsAgent });
  }

  async close(): Promise<void> {
    this.http.close();
  }

  preview(req: SubmitRequest): { ok: true; request: RequestPreview } | { ok: false; fault: { code: string; message: string } } {
    try {
      const xml = packet(this.cfg.senderCode, 'HJ_SB', req.key, hjsbBody(req)).replace(/<TIME>\d{14}<\/TIME>/, '<TIME>&lt;yyyyMMddHHmmss at sending&gt;</TIME>');
      return { ok: true, request: { method: 'POST', url: this.cfg.baseUrl.replace(/\/+$/, '') + PATH, headers: { 'Content-Type': 'text/xml; charset=GBK' }, body: xml, encoding: 'gbk' } };
    } catch (e) {
      if (e instanceof PayloadError) return { ok: false, fault: { code: e.code, message: e.message } };
      throw e;
    }
  }

  private async call(service: string, seq: string, body: string): Promise<Answer> {
    const bytes = iconv.encode(packet(this.cfg.senderCode, service, seq, body), 'gbk');
    let res: AxiosResponse<ArrayBuffer>;
    try {
      res = await this.http.client.post(PATH, bytes, { headers: { 'Content-Type': 'text/xml; charset=GBK' }, responseType: 'arraybuffer' });
    } catch (e) {
      // A certificate refused either way is our configuration (or an impostor), not an outage:
      // pause and alert rather than hammer.
      if (isTlsTrustFailure(e)) return { ok: false, outcome: { kind: 'auth', fault: fault('DEPT_TLS_REFUSED', transportMessage(e), (e as { code?: string }).code) } };
      return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_UNREACHABLE', transportMessage(e)) } };
    }
    const raw = Buffer.from(res.data);
    if (res.status >= 500) return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', `HTTP ${res.status}`, String(res.status)) } };
    const decl = /^\s*<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']/i.exec(raw.subarray(0, 200).toString('latin1'));
    if (decl && !/^(gbk|gb2312|gb18030|cp936)$/i.test(decl[1]!)) return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `answer declares encoding ${decl[1]}, not GBK`, String(res.status)) } };
    const xml = iconv.decode(raw, 'gbk');
    if (xml.includes('\uFFFD')) return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', 'answer is not valid GBK', String(res.status)) } };
    const parsed = parseXmlSafely(xml, this.cfg.maxAnswerBytes);
    if (!parsed.ok) return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', parsed.reason, String(res.status)) } };
    const p = child(parsed.doc, 'PACKET');
    const ret = child(p, 'RETURN');
    if (!ret || typeof ret !== 'object') return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', 'no PACKET/RETURN in the answer', String(res.status)) } };
    const echoed = text(child(child(p, 'HEAD'), 'SEQ'));
    if (echoed !== seq) return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `answer for SEQ ${echoed ?? '(none)'}, not ours`, String(res.status)) } };
    const code = text(child(ret, 'CODE')) ?? '';
    const msg = text(child(ret, 'MSG')) || code;
    switch (code) {
      case '00':
      case '01':
        return { ok: true, ret: ret as Record<string, unknown>, code, msg };
      case '10':
        return { ok: false, outcome: { kind: 'permanent', fault: fault('DEPT_REJECTED_PACKET', msg, code) } };
      case '11':
        return { ok: false, outcome: { kind: 'permanent', fault: fault('DEPT_REJECTED_DATA', msg, code) } };
      case '20':
        return { ok: false, outcome: { kind: 'permanent', fault: fault('DEPT_IDENTITY_MISMATCH', msg, code) } };
      case '30':
        // Material hash mismatch (CL_SC): the material starts again; for other services, a bad answer.
        return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_MATERIAL_MISMATCH', msg, code) } };
      case '90':
      case '99':
        return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', msg, code) } };
      default:
        return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `CODE ${JSON.stringify(code)} is not in the spec: ${msg}`, code || 'none') } };
    }
  }

  async submit(req: SubmitRequest): Promise<Outcome<Receipt>> {
    let body: string;
    try {
      body = hjsbBody(req);
    } catch (e) {
      if (e instanceof PayloadError) return { kind: 'permanent', fault: fault(e.code, e.message) };
      throw e;
    }
    if (!/^[A-Za-z0-9]{1,32}$/.test(req.key)) return { kind: 'permanent', fault: fault('MAPPING_INCOMPLETE', 'the route key is not a valid SEQ (1–32 of [A-Za-z0-9])') };
    // The submission's SEQ is its idempotency key: a repeat gets CODE 01 and the first answer.
    const a = await this.call('HJ_SB', req.key, body);
    if (!a.ok) return a.outcome;
    const slbh = text(child(a.ret, 'SLBH'));
    if (!slbh) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `CODE ${a.code} without SLBH`, a.code) };
    return { kind: a.code === '00' ? 'ok' : 'duplicate', value: { receiptNo: slbh } };
  }

  /**
   * CL_SC in chunks of 512 KiB, each with its own SEQ. ps has no query of held chunks, so the
   * chunks it acknowledged (in order) are remembered after each answer and an interrupted push
   * resumes after them; re-sending a held chunk is harmless. The last chunk goes only after the
   * whole file matched its declared SHA-256.
   */
  async pushMaterial(ctx: PushContext): Promise<Outcome<PushReceipt>> {
    const m = ctx.material;
    const total = chunkCount(m.size, PS_CHUNK);
    const acked = typeof ctx.resume.acked === 'number' ? ctx.resume.acked : 0;
    const held = new Set(Array.from({ length: Math.min(acked, total - 1) }, (_, i) => i));
    let head: string;
    try {
      head = `${tag('SLBH', value(ctx.receiptNo, 'SLBH', true))}${tag('CLBH', value(m.id, 'CLBH', true))}${tag('WJM', value(m.fileName, 'WJM', true))}`;
    } catch (e) {
      if (e instanceof PayloadError) return { kind: 'permanent', fault: fault(e.code, e.message) };
      throw e;
    }
    let complete = false;
    let stop: Outcome<never> | null = null;
    const streamed = await streamChunks(await m.open(), m, PS_CHUNK, held, async (i, chunk, isLast) => {
      const body = `<BODY>${head}<FPXH>${i}</FPXH><FPZS>${total}</FPZS><SHA256>${m.sha256.toLowerCase()}</SHA256><NR>${chunk.toString('base64')}</NR></BODY>`;
      const a = await this.call('CL_SC', newSeq(), body);
      if (!a.ok) {
        // CODE 30: the department discarded the material; start it again from the first chunk.
        if (a.outcome.kind === 'retry' && a.outcome.fault.code === 'DEPT_MATERIAL_MISMATCH') await ctx.remember({ acked: 0 });
        return { ok: false, stop: (stop = a.outcome) };
      }
      if (isLast) complete = text(child(a.ret, 'WC')) === '1';
      else await ctx.remember({ acked: i + 1 });
      return { ok: true };
    });
    if (!streamed.ok) return 'mismatch' in streamed ? { kind: 'permanent', fault: streamed.mismatch } : stop!;
    if (!complete) return { kind: 'retry', fault: fault('DEPT_UPLOAD_INCOMPLETE', 'the department does not report the file complete (WC); sending it again') };
    return { kind: 'ok', value: { sent: streamed.sent, skipped: streamed.skipped } };
  }

  async fetchResult(receiptNo: string): Promise<Outcome<DepartmentEvent>> {
    let body: string;
    try {
      body = `<BODY>${tag('SLBH', value(receiptNo, 'SLBH', true))}</BODY>`;
    } catch (e) {
      return { kind: 'permanent', fault: fault('DEPT_BAD_ANSWER', (e as Error).message) };
    }
    const a = await this.call('JG_CX', newSeq(), body);
    if (!a.ok) return a.outcome;
    const zt = text(child(a.ret, 'ZT')) ?? '';
    if (!Object.hasOwn(PS_STATUS, zt)) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `unknown ZT ${JSON.stringify(zt)}`, a.code) };
    const at = beijingCompactTime(text(child(a.ret, 'ZTSJ')));
    if (Number.isNaN(at)) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', 'ZTSJ is missing or not yyyyMMddHHmmss', a.code) };
    const zz = child(a.ret, 'ZZ');
    return {
      kind: 'ok',
      value: { receiptNo, status: PS_STATUS[zt]!, departmentStatus: zt, occurredAt: at, opinion: text(child(a.ret, 'YJ')) || null, licence: zz && typeof zz === 'object' ? licenceFromXml(zz) : null, source: 'poll' },
    };
  }
}
