/**
 * 税务 tax system (specs/dept-tax.md): signed REST/JSON both ways, results by signed webhook with a
 * replay store (the gateway keeps the nonces), GET for reconciliation.
 */
import type { AxiosResponse } from 'axios';
import type { Logger } from 'pino';
import type { RouteStatus } from '../../model/case.js';
import type { DepartmentEvent } from '../../model/department-event.js';
import type { DepartmentFault, Outcome } from '../../model/outcome.js';
import { createHttp, jsonObject, retryAfterMs, transportMessage } from '../http.js';
import { PassThrough } from 'node:stream';
import type { CallbackResult, CallbackTarget, Connector, PushContext, PushReceipt, Receipt, RequestPreview, SubmitRequest } from '../types.js';
import { streamChunks } from '../material-stream.js';
import { sha256Hex, signedHeaders, verifySigned } from './signing.js';

export interface TaxConnectorConfig {
  baseUrl: string;
  appId: string;
  appSecret: string;
  timeoutMs: number;
  maxAnswerBytes: number;
  callbackToleranceSeconds: number;
  /**
   * The path (and query) the tax system posts its webhooks to, as it signs them, when a proxy in
   * front of the gateway rewrites it; otherwise the path as received is what was signed.
   */
  callbackPath?: string;
}

export const TAX_STATUS: Readonly<Record<string, RouteStatus>> = {
  ACCEPTED: 'SUBMITTED',
  REVIEWING: 'IN_REVIEW',
  APPROVED: 'APPROVED',
  REJECTED: 'REJECTED',
  RETURNED: 'RETURNED',
};

/** dept-tax.md: one PUT of at most 50 MiB. */
const TAX_MAX_FILE = 50 * 1024 * 1024;
/** Bytes handed to the request at a time; the last piece waits for the hash check. */
const TAX_PIPE_CHUNK = 256 * 1024;

/** The spec keeps nonces 10 minutes; the gateway remembers them as long. */
const NONCE_TTL_SECONDS = 600;

const fault = (code: string, message: string, departmentCode?: string): DepartmentFault =>
  departmentCode === undefined ? { code, message } : { code, message, departmentCode };

export class TaxConnector implements Connector {
  readonly department = 'tax' as const;
  readonly resultMode = 'callback' as const;
  private readonly http;
  private readonly basePath: string;

  constructor(
    private readonly cfg: TaxConnectorConfig,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.http = createHttp({ baseUrl: cfg.baseUrl, timeoutMs: cfg.timeoutMs, maxAnswerBytes: cfg.maxAnswerBytes });
    // The signed PATH_AND_QUERY is the full path on the department's host, base path included.
    this.basePath = new URL(cfg.baseUrl).pathname.replace(/\/+$/, '');
  }

  async close(): Promise<void> {
    this.http.close();
  }

  private buildSubmit(req: SubmitRequest) {
    const body = JSON.stringify({ bizSerialNo: req.key, bizType: req.businessType, ...req.payload });
    return { path: '/api/v2/tax-registrations', body };
  }

  preview(req: SubmitRequest): { ok: true; request: RequestPreview } {
    const b = this.buildSubmit(req);
    const signed = signedHeaders(this.cfg.appId, '<app secret>', 'POST', this.basePath + b.path, sha256Hex(b.body), this.now());
    return {
      ok: true,
      request: {
        method: 'POST',
        url: this.cfg.baseUrl.replace(/\/+$/, '') + b.path,
        // The signature changes with every request (timestamp, nonce): shown as a placeholder.
        headers: { 'Content-Type': 'application/json; charset=utf-8', ...signed, 'X-Signature': '<HMAC-SHA256 of the request>' },
        body: b.body,
        encoding: 'utf-8',
      },
    };
  }

  private async send(method: 'GET' | 'POST', path: string, body?: string): Promise<{ ok: true; res: AxiosResponse } | { ok: false; outcome: Outcome<never> }> {
    const headers: Record<string, string> = signedHeaders(this.cfg.appId, this.cfg.appSecret, method, this.basePath + path, sha256Hex(body ?? ''), this.now());
    if (body !== undefined) headers['Content-Type'] = 'application/json; charset=utf-8';
    try {
      const res = await this.http.client.request({ method, url: path, data: body, headers });
      return { ok: true, res };
    } catch (e) {
      return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_UNREACHABLE', transportMessage(e)) } };
    }
  }

  /** The answers every tax endpoint shares: signing refusals, rate limit, busy. Null: endpoint-specific. */
  private common(res: AxiosResponse, body: Record<string, unknown> | null): Outcome<never> | null {
    const code = typeof body?.code === 'string' ? body.code : undefined;
    const msg = typeof body?.message === 'string' && body.message ? body.message : `HTTP ${res.status}${code ? ` ${code}` : ''}`;
    if (res.status === 401) {
      // 1002: our clock is off or a nonce collided — a fresh signature may pass; 1001/1003: our configuration.
      if (code === '1002') return { kind: 'retry', fault: fault('DEPT_SIGNATURE_STALE', msg, code) };
      return { kind: 'auth', fault: fault('DEPT_AUTH_REFUSED', msg, code ?? '401') };
    }
    if (res.status === 429) return { kind: 'retry-after', delayMs: retryAfterMs(res.headers['retry-after'], 1000), fault: fault('DEPT_RATE_LIMITED', msg, code ?? '429') };
    if (res.status >= 500 || res.status === 408) return { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', msg, code ?? String(res.status)) };
    return null;
  }

  async submit(req: SubmitRequest): Promise<Outcome<Receipt>> {
    const b = this.buildSubmit(req);
    const sent = await this.send('POST', b.path, b.body);
    if (!sent.ok) return sent.outcome;
    const res = sent.res;
    const body = jsonObject(res);
    const shared = this.common(res, body);
    if (shared) return shared;
    const code = typeof body?.code === 'string' ? body.code : undefined;
    const msg = typeof body?.message === 'string' && body.message ? body.message : (code ?? `HTTP ${res.status}`);
    const applyNo = (body?.data as { applyNo?: unknown } | undefined)?.applyNo;
    if (res.status === 200 && (code === '0000' || code === '2001')) {
      if (typeof applyNo !== 'string' || !applyNo) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `${code} without data.applyNo`, code) };
      return { kind: code === '0000' ? 'ok' : 'duplicate', value: { receiptNo: applyNo } };
    }
    if (res.status === 400 && code === '3001') return { kind: 'permanent', fault: fault('DEPT_REJECTED_DATA', msg, code) };
    if (res.status === 400 && code === '3002') return { kind: 'permanent', fault: fault('DEPT_REFUSED', msg, code) };
    if (res.status === 200) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `200 with code ${code ?? '(none)'}: ${msg}`, code ?? '200') };
    return { kind: 'permanent', fault: fault('DEPT_UNEXPECTED_ANSWER', msg, code ?? String(res.status)) };
  }

  /**
   * One signed, streamed PUT of the whole file (at most 50 MiB; a larger one fails at once). The
   * signature covers X-Content-SHA256, the declared hash; the bytes stream from the platform
   * through a hash and a counter, and the tail is held back until they matched, so a mismatching
   * file is broken off before the department has all of it. A second PUT replaces the first, so
   * a resumed push simply sends it again.
   */
  async pushMaterial(ctx: PushContext): Promise<Outcome<PushReceipt>> {
    const m = ctx.material;
    if (m.size > TAX_MAX_FILE)
      return { kind: 'permanent', fault: fault('MATERIAL_TOO_LARGE', `the tax system takes files of at most 50 MiB (dept-tax.md); ${m.fileName} has ${m.size} bytes`) };
    const path = `/api/v2/materials/${encodeURIComponent(ctx.receiptNo)}/${encodeURIComponent(m.id)}`;
    const sha = m.sha256.toLowerCase();
    const headers: Record<string, string> = {
      ...signedHeaders(this.cfg.appId, this.cfg.appSecret, 'PUT', this.basePath + path, sha, this.now()),
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(m.size),
      'X-Content-SHA256': sha,
      'X-File-Name': `UTF-8''${encodeURIComponent(m.fileName)}`,
    };
    const body = new PassThrough();
    const put = this.http.client.put(path, body, { headers, maxBodyLength: Infinity }).then(
      (res) => ({ ok: true as const, res }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    let streamed;
    try {
      streamed = await streamChunks(await m.open(), m, TAX_PIPE_CHUNK, new Set(), async (_i, chunk) => {
        if (!body.write(chunk)) await new Promise<void>((r) => body.once('drain', r));
        return { ok: true };
      });
    } catch (e) {
      // The source broke (or the push was stopped): break the request off too, then report.
      body.destroy(e as Error);
      await put;
      throw e;
    }
    if (!streamed.ok) {
      // Break the request off: the department never receives the whole (wrong) file.
      body.destroy(new Error('material does not match its declared hash'));
      await put;
      return 'mismatch' in streamed ? { kind: 'permanent', fault: streamed.mismatch } : { kind: 'retry', fault: fault('DEPT_UNREACHABLE', 'upload interrupted') };
    }
    body.end();
    const r = await put;
    if (!r.ok) return { kind: 'retry', fault: fault('DEPT_UNREACHABLE', transportMessage(r.e)) };
    const b = jsonObject(r.res);
    const shared = this.common(r.res, b);
    if (shared) return shared;
    const code = typeof b?.code === 'string' ? b.code : undefined;
    const msg = typeof b?.message === 'string' && b.message ? b.message : (code ?? `HTTP ${r.res.status}`);
    const fileId = (b?.data as { fileId?: unknown } | undefined)?.fileId;
    if (r.res.status === 200 && code === '0000' && typeof fileId === 'string') return { kind: 'ok', value: { fileId, sent: streamed.sent, skipped: 0 } };
    if (r.res.status === 413 || code === '4013') return { kind: 'permanent', fault: fault('MATERIAL_TOO_LARGE', msg, code ?? '413') };
    // 4001: the bytes did not match X-Content-SHA256 at the department although they matched here: send again.
    if (code === '4001') return { kind: 'retry', fault: fault('DEPT_CHECKSUM_MISMATCH', msg, code) };
    return { kind: r.res.status >= 400 && r.res.status < 500 ? 'permanent' : 'retry', fault: fault('DEPT_UPLOAD_REFUSED', msg, code ?? String(r.res.status)) };
  }

  async fetchResult(receiptNo: string): Promise<Outcome<DepartmentEvent>> {
    const sent = await this.send('GET', `/api/v2/tax-registrations/${encodeURIComponent(receiptNo)}`);
    if (!sent.ok) return sent.outcome;
    const body = jsonObject(sent.res);
    const shared = this.common(sent.res, body);
    if (shared) return shared;
    if (sent.res.status === 200 && body?.code === '0000') {
      const parsed = parseStatus(body.data, 'reconcile');
      return parsed.ok ? { kind: 'ok', value: parsed.event } : { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', parsed.message, '0000') };
    }
    return { kind: 'permanent', fault: fault('DEPT_UNEXPECTED_ANSWER', typeof body?.message === 'string' ? body.message : `HTTP ${sent.res.status}`, typeof body?.code === 'string' ? body.code : String(sent.res.status)) };
  }

  parseCallback(raw: Buffer, headers: Record<string, string | string[] | undefined>, now: number, target: CallbackTarget): CallbackResult {
    const v = verifySigned(headers, target.method, this.cfg.callbackPath || target.pathAndQuery, raw, { appId: this.cfg.appId, secret: this.cfg.appSecret, nowMs: now, toleranceSeconds: this.cfg.callbackToleranceSeconds });
    if (!v.ok) return { ok: false, status: 401, code: 'BAD_SIGNATURE', message: v.fault.message, reply: { code: v.fault.code, message: v.fault.message } };
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return { ok: false, status: 400, code: 'MALFORMED_JSON', message: 'callback body is not JSON', reply: { code: '3001', message: 'body is not JSON' } };
    }
    const parsed = parseStatus(body, 'callback');
    if (!parsed.ok) return { ok: false, status: 400, code: 'VALIDATION_FAILED', message: parsed.message, reply: { code: '3001', message: parsed.message } };
    const key = (body as { bizSerialNo?: unknown }).bizSerialNo;
    return {
      ok: true,
      events: [{ ...(typeof key === 'string' && key ? { key } : {}), receiptNo: parsed.event.receiptNo!, event: parsed.event }],
      reply: { code: '0000' },
      replay: { id: v.nonce, ttlSeconds: NONCE_TTL_SECONDS },
    };
  }
}

function parseStatus(data: unknown, source: string): { ok: true; event: DepartmentEvent } | { ok: false; message: string } {
  const o = data && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : null;
  if (!o) return { ok: false, message: 'not a JSON object' };
  const status = o.status;
  if (typeof status !== 'string' || !Object.hasOwn(TAX_STATUS, status)) return { ok: false, message: `unknown status ${JSON.stringify(status)}` };
  const at = typeof o.statusTime === 'string' ? Date.parse(o.statusTime) : NaN;
  if (Number.isNaN(at)) return { ok: false, message: 'statusTime is missing or not a time' };
  if (typeof o.applyNo !== 'string' || !o.applyNo) return { ok: false, message: 'applyNo is missing' };
  return {
    ok: true,
    event: {
      receiptNo: o.applyNo,
      status: TAX_STATUS[status]!,
      departmentStatus: status,
      occurredAt: at,
      opinion: typeof o.opinion === 'string' && o.opinion ? o.opinion : null,
      licence: o.licence && typeof o.licence === 'object' ? o.licence : null,
      source,
    },
  };
}
