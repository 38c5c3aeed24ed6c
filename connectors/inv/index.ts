/**
 * 发改 investment-project platform (specs/dept-inv.md): REST/JSON, OAuth2 client credentials,
 * Idempotency-Key, results by signed webhook with GET for reconciliation.
 */
import type { AxiosResponse } from 'axios';
import type { Logger } from 'pino';
import type { RouteStatus } from '../../model/case.js';
import type { DepartmentEvent } from '../../model/department-event.js';
import type { DepartmentFault, Outcome } from '../../model/outcome.js';
import { verifySignatureHeader } from '../../model/signature.js';
import { createHttp, jsonObject, retryAfterMs, transportMessage } from '../http.js';
import type { CallbackResult, Connector, PushContext, PushReceipt, Receipt, SubmitRequest } from '../types.js';
import { chunkCount, streamChunks } from '../material-stream.js';

export interface InvConnectorConfig {
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  webhookSecret: string;
  scope: string;
  timeoutMs: number;
  maxAnswerBytes: number;
  callbackToleranceSeconds: number;
}

/** The department's statuses → unified route statuses. */
export const INV_STATUS: Readonly<Record<string, RouteStatus>> = {
  received: 'SUBMITTED',
  reviewing: 'IN_REVIEW',
  approved: 'APPROVED',
  rejected: 'REJECTED',
  returned: 'RETURNED',
};

type Call = { ok: true; res: AxiosResponse } | { ok: false; outcome: Outcome<never> };

const fault = (code: string, message: string, departmentCode?: string): DepartmentFault =>
  departmentCode === undefined ? { code, message } : { code, message, departmentCode };

export class InvConnector implements Connector {
  readonly department = 'inv' as const;
  readonly resultMode = 'callback' as const;
  private readonly http;
  private token: { value: string; expiresAt: number } | null = null;
  private tokenFetch: Promise<Outcome<string>> | null = null;

  constructor(
    private readonly cfg: InvConnectorConfig,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.http = createHttp({ baseUrl: cfg.baseUrl, timeoutMs: cfg.timeoutMs, maxAnswerBytes: cfg.maxAnswerBytes });
  }

  async close(): Promise<void> {
    this.http.close();
  }

  /** One token fetch at a time; a cached token is used until a minute before it expires. */
  private async accessToken(): Promise<Outcome<string>> {
    if (this.token && this.token.expiresAt - 60_000 > this.now()) return { kind: 'ok', value: this.token.value };
    this.tokenFetch ??= this.fetchToken().finally(() => (this.tokenFetch = null));
    return this.tokenFetch;
  }

  private async fetchToken(): Promise<Outcome<string>> {
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: this.cfg.clientId,
      client_secret: this.cfg.clientSecret,
      scope: this.cfg.scope,
    });
    let res: AxiosResponse;
    try {
      res = await this.http.client.post('/oauth2/token', form.toString(), {
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      });
    } catch (e) {
      return { kind: 'retry', fault: fault('DEPT_UNREACHABLE', transportMessage(e)) };
    }
    const body = jsonObject(res);
    if (res.status === 200 && body && typeof body.access_token === 'string' && body.access_token) {
      const ttl = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 300;
      this.token = { value: body.access_token, expiresAt: this.now() + ttl * 1000 };
      return { kind: 'ok', value: body.access_token };
    }
    const err = typeof body?.error === 'string' ? body.error : undefined;
    if (res.status === 429) return { kind: 'retry-after', delayMs: retryAfterMs(res.headers['retry-after'], 1000), fault: fault('DEPT_RATE_LIMITED', 'token endpoint rate limited', '429') };
    if (res.status >= 500) return { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', `token endpoint answered ${res.status}`, String(res.status)) };
    if (res.status === 200) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', 'token answer without access_token', '200') };
    // invalid_client, invalid_scope, unauthorized_client …: our configuration is wrong.
    return { kind: 'auth', fault: fault('DEPT_AUTH_REFUSED', `token refused: ${err ?? res.status}`, err ?? String(res.status)) };
  }

  /** Sends an authorised request; on invalid_token fetches a new token and repeats once. */
  private async authorised(send: (token: string) => Promise<AxiosResponse>): Promise<Call> {
    for (let round = 0; round < 2; round++) {
      const tok = await this.accessToken();
      if (tok.kind !== 'ok') return { ok: false, outcome: tok as Outcome<never> };
      let res: AxiosResponse;
      try {
        res = await send(tok.value);
      } catch (e) {
        return { ok: false, outcome: { kind: 'retry', fault: fault('DEPT_UNREACHABLE', transportMessage(e)) } };
      }
      if (res.status === 401) {
        const err = jsonObject(res)?.error;
        if (err === 'invalid_token' && round === 0) {
          if (this.token?.value === tok.value) this.token = null;
          this.log.info({ department: 'inv' }, 'access token refused as invalid_token; fetching a new one');
          continue;
        }
        return {
          ok: false,
          outcome: { kind: 'auth', fault: fault('DEPT_AUTH_REFUSED', `refused: ${typeof err === 'string' ? err : '401'}`, typeof err === 'string' ? err : '401') },
        };
      }
      return { ok: true, res };
    }
    return { ok: false, outcome: { kind: 'auth', fault: fault('DEPT_AUTH_REFUSED', 'a fresh token was refused too', 'invalid_token') } };
  }

  /** The one builder of a submission: `submit` sends it, `preview` shows it. */
  private buildSubmit(req: SubmitRequest): { ok: true; path: string; body: string; headers: Record<string, string> } | { ok: false; fault: DepartmentFault } {
    const { project_code: projectCode, ...fields } = req.payload;
    if (typeof projectCode !== 'string' || !projectCode) return { ok: false, fault: fault('MAPPING_INCOMPLETE', 'the mapping gave no project_code for the inv route') };
    const body = JSON.stringify({ ...fields, request_id: req.key, matter_code: req.businessType });
    return {
      ok: true,
      path: `/api/v1/projects/${encodeURIComponent(projectCode)}/applications`,
      body,
      headers: { 'Content-Type': 'application/json; charset=utf-8', 'Idempotency-Key': req.key },
    };
  }

  preview(req: SubmitRequest) {
    const b = this.buildSubmit(req);
    if (!b.ok) return { ok: false as const, fault: b.fault };
    return {
      ok: true as const,
      request: { method: 'POST', url: this.cfg.baseUrl.replace(/\/+$/, '') + b.path, headers: { Authorization: 'Bearer <access token>', ...b.headers }, body: b.body, encoding: 'utf-8' as const },
    };
  }

  async submit(req: SubmitRequest): Promise<Outcome<Receipt>> {
    const b = this.buildSubmit(req);
    if (!b.ok) return { kind: 'permanent', fault: b.fault };
    const call = await this.authorised((token) => this.http.client.post(b.path, b.body, { headers: { Authorization: `Bearer ${token}`, ...b.headers } }));
    if (!call.ok) return call.outcome;
    return this.classifySubmit(call.res);
  }

  private classifySubmit(res: AxiosResponse): Outcome<Receipt> {
    const body = jsonObject(res);
    const code = typeof body?.error_code === 'string' ? body.error_code : undefined;
    const s = res.status;
    if (s === 201 || s === 200) {
      const id = body?.application_id;
      // Accepted but unreadable: asking again with the same Idempotency-Key is safe and gets the receipt.
      if (typeof id !== 'string' || !id) return { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `${s} without application_id`, String(s)) };
      const replay = s === 200 && String(res.headers['idempotent-replay']).toLowerCase() === 'true';
      return { kind: replay ? 'duplicate' : 'ok', value: { receiptNo: id } };
    }
    if (s === 400 && code === 'VALIDATION_FAILED') {
      const details = Array.isArray(body?.details) ? body.details : [];
      const words = details
        .map((d) => (d && typeof d === 'object' ? `${String((d as Record<string, unknown>).field)}: ${String((d as Record<string, unknown>).reason)}` : ''))
        .filter(Boolean)
        .join('; ');
      return { kind: 'permanent', fault: fault('DEPT_REJECTED_DATA', words || 'VALIDATION_FAILED', code) };
    }
    if (s === 404 && code === 'PROJECT_NOT_FOUND') return { kind: 'permanent', fault: fault('DEPT_PROJECT_NOT_FOUND', messageOf(body) ?? 'PROJECT_NOT_FOUND', code) };
    if (s === 422 && code === 'PROJECT_STATE_INVALID') return { kind: 'permanent', fault: fault('DEPT_REFUSED', messageOf(body) ?? code, code) };
    if (s === 429) return { kind: 'retry-after', delayMs: retryAfterMs(res.headers['retry-after'], 1000), fault: fault('DEPT_RATE_LIMITED', 'rate limited', '429') };
    if (s >= 500) return { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', messageOf(body) ?? `HTTP ${s}`, code ?? String(s)) };
    if (s === 408) return { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', 'request timeout', '408') };
    // An answer the spec does not list: a client error no retry will fix; keep the department's words.
    return { kind: 'permanent', fault: fault('DEPT_UNEXPECTED_ANSWER', messageOf(body) ?? `HTTP ${s} ${code ?? ''}`.trim(), code ?? String(s)) };
  }

  /**
   * Upload session of dept-inv.md: open a session (or resume the remembered one, asking which parts
   * the department holds), send the missing parts, then complete — only after the whole file has
   * matched its declared SHA-256 and size; on a mismatch the session is left uncompleted.
   */
  async pushMaterial(ctx: PushContext): Promise<Outcome<PushReceipt>> {
    const m = ctx.material;
    if (m.size > MAX_FILE) return { kind: 'permanent', fault: fault('MATERIAL_TOO_LARGE', `inv takes files of at most 2 GiB; this one has ${m.size} bytes`) };
    let uploadId = typeof ctx.resume.uploadId === 'string' ? ctx.resume.uploadId : undefined;
    let partSize = typeof ctx.resume.partSize === 'number' ? ctx.resume.partSize : 0;
    const held = new Set<number>();
    if (uploadId) {
      const q = await this.authorised((t) => this.http.client.get(`/api/v1/uploads/${encodeURIComponent(uploadId!)}`, { headers: { Authorization: `Bearer ${t}` } }));
      if (!q.ok) return q.outcome;
      const b = jsonObject(q.res);
      if (q.res.status === 200 && b && Array.isArray(b.parts_received)) {
        if (b.state === 'complete' && typeof ctx.resume.fileId === 'string') return { kind: 'duplicate', value: { fileId: ctx.resume.fileId, sent: 0, skipped: chunkCount(m.size, partSize) } };
        for (const n of b.parts_received) if (Number.isInteger(n) && n >= 1) held.add(n - 1);
      } else if (q.res.status === 404 || q.res.status === 410) {
        uploadId = undefined; // expired or discarded: a new session
      } else {
        const shared = this.sharedAnswer(q.res);
        if (shared) return shared;
        uploadId = undefined;
      }
    }
    if (!uploadId) {
      const body = JSON.stringify({ application_id: ctx.receiptNo, material_id: m.id, file_name: m.fileName, size: m.size, sha256: m.sha256 });
      const c = await this.authorised((t) => this.http.client.post('/api/v1/uploads', body, { headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json; charset=utf-8' } }));
      if (!c.ok) return c.outcome;
      const b = jsonObject(c.res);
      if (c.res.status !== 201 || typeof b?.upload_id !== 'string' || typeof b.part_size !== 'number' || b.part_size < 1) {
        return this.sharedAnswer(c.res) ?? { kind: c.res.status >= 400 && c.res.status < 500 ? 'permanent' : 'retry', fault: fault('DEPT_UPLOAD_REFUSED', messageOf(b) ?? `opening an upload session answered ${c.res.status}`, typeof b?.error_code === 'string' ? b.error_code : String(c.res.status)) };
      }
      uploadId = b.upload_id;
      partSize = b.part_size;
      await ctx.remember({ uploadId, partSize });
    }
    const id = uploadId!;
    let stopped: Outcome<never> | null = null;
    const streamed = await streamChunks(await m.open(), m, partSize, held, async (i, chunk) => {
      const put = await this.authorised((t) =>
        this.http.client.put(`/api/v1/uploads/${encodeURIComponent(id)}/parts/${i + 1}`, chunk, { headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/octet-stream' }, maxBodyLength: Infinity }),
      );
      if (!put.ok) return { ok: false, stop: (stopped = put.outcome) };
      if (put.res.status !== 200) {
        stopped = this.sharedAnswer(put.res) ?? { kind: 'retry', fault: fault('DEPT_UPLOAD_REFUSED', messageOf(jsonObject(put.res)) ?? `part ${i + 1} answered ${put.res.status}`, String(put.res.status)) };
        return { ok: false, stop: stopped };
      }
      return { ok: true };
    });
    if (!streamed.ok) {
      if ('mismatch' in streamed) return { kind: 'permanent', fault: streamed.mismatch };
      return stopped!;
    }
    const done = await this.authorised((t) => this.http.client.post(`/api/v1/uploads/${encodeURIComponent(id)}/complete`, '', { headers: { Authorization: `Bearer ${t}` } }));
    if (!done.ok) return done.outcome;
    const b = jsonObject(done.res);
    if (done.res.status === 200 && typeof b?.file_id === 'string') {
      await ctx.remember({ fileId: b.file_id });
      return { kind: 'ok', value: { fileId: b.file_id, sent: streamed.sent, skipped: streamed.skipped } };
    }
    if (done.res.status === 422 && b?.error_code === 'MISSING_PARTS') return { kind: 'retry', fault: fault('DEPT_MISSING_PARTS', `the department lacks parts ${JSON.stringify(b.missing)}`, 'MISSING_PARTS') };
    if (done.res.status === 422 && b?.error_code === 'CHECKSUM_MISMATCH') {
      // The session is discarded; our bytes matched the declared hash, so start a new one.
      await ctx.remember({ uploadId: null, partSize: null });
      return { kind: 'retry', fault: fault('DEPT_CHECKSUM_MISMATCH', 'the department found the assembled file does not match; starting a new session', 'CHECKSUM_MISMATCH') };
    }
    return this.sharedAnswer(done.res) ?? { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', `complete answered ${done.res.status}`, String(done.res.status)) };
  }

  /** 429 and 5xx, as for every inv endpoint. */
  private sharedAnswer(res: AxiosResponse): Outcome<never> | null {
    if (res.status === 429) return { kind: 'retry-after', delayMs: retryAfterMs(res.headers['retry-after'], 1000), fault: fault('DEPT_RATE_LIMITED', 'rate limited', '429') };
    if (res.status >= 500 || res.status === 408) return { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', `HTTP ${res.status}`, String(res.status)) };
    return null;
  }

  async fetchResult(receiptNo: string): Promise<Outcome<DepartmentEvent>> {
    const call = await this.authorised((token) =>
      this.http.client.get(`/api/v1/applications/${encodeURIComponent(receiptNo)}`, { headers: { Authorization: `Bearer ${token}` } }),
    );
    if (!call.ok) return call.outcome;
    const res = call.res;
    if (res.status === 200) {
      const parsed = parseStatusBody(jsonObject(res), 'reconcile');
      return parsed.ok ? { kind: 'ok', value: parsed.event } : { kind: 'retry', fault: fault('DEPT_BAD_ANSWER', parsed.message, '200') };
    }
    if (res.status === 429) return { kind: 'retry-after', delayMs: retryAfterMs(res.headers['retry-after'], 1000), fault: fault('DEPT_RATE_LIMITED', 'rate limited', '429') };
    if (res.status >= 500 || res.status === 408) return { kind: 'retry', fault: fault('DEPT_UNAVAILABLE', `HTTP ${res.status}`, String(res.status)) };
    return { kind: 'permanent', fault: fault('DEPT_UNEXPECTED_ANSWER', messageOf(jsonObject(res)) ?? `HTTP ${res.status}`, String(res.status)) };
  }

  parseCallback(raw: Buffer, headers: Record<string, string | string[] | undefined>, now: number): CallbackResult {
    // inv signs the body only (X-Inv-Signature), so the request line is not needed.
    const sig = verifySignatureHeader(headers['x-inv-signature'], raw, this.cfg.webhookSecret, now, this.cfg.callbackToleranceSeconds);
    if (!sig.ok) return { ok: false, status: 401, code: 'BAD_SIGNATURE', message: sig.message };
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return { ok: false, status: 400, code: 'MALFORMED_JSON', message: 'callback body is not JSON' };
    }
    const obj = body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : null;
    if (obj?.event !== 'application.status_changed')
      return { ok: false, status: 400, code: 'VALIDATION_FAILED', message: 'event must be application.status_changed' };
    const parsed = parseStatusBody(obj, 'callback');
    if (!parsed.ok) return { ok: false, status: 400, code: 'VALIDATION_FAILED', message: parsed.message };
    const key = typeof obj.request_id === 'string' && obj.request_id ? obj.request_id : undefined;
    return { ok: true, events: [{ key, receiptNo: parsed.event.receiptNo, event: parsed.event }], reply: { received: true } };
  }
}

const MAX_FILE = 2 * 1024 ** 3;

function messageOf(body: Record<string, unknown> | null): string | undefined {
  const m = body?.message ?? body?.error_description;
  return typeof m === 'string' && m ? m : undefined;
}

function parseStatusBody(obj: Record<string, unknown> | null, source: string): { ok: true; event: DepartmentEvent } | { ok: false; message: string } {
  if (!obj) return { ok: false, message: 'answer is not a JSON object' };
  const status = obj.status;
  if (typeof status !== 'string' || !Object.hasOwn(INV_STATUS, status)) return { ok: false, message: `unknown status ${JSON.stringify(status)}` };
  const at = typeof obj.occurred_at === 'string' ? Date.parse(obj.occurred_at) : NaN;
  if (Number.isNaN(at)) return { ok: false, message: 'occurred_at is missing or not a time' };
  if (typeof obj.application_id !== 'string' || !obj.application_id) return { ok: false, message: 'application_id is missing' };
  const licence = obj.licence && typeof obj.licence === 'object' ? obj.licence : null;
  return {
    ok: true,
    event: {
      receiptNo: obj.application_id,
      status: INV_STATUS[status]!,
      departmentStatus: status,
      occurredAt: at,
      opinion: typeof obj.opinion === 'string' && obj.opinion ? obj.opinion : null,
      licence,
      source,
    },
  };
}
