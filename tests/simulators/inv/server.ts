/**
 * Simulator of the 发改 investment-project platform, built from specs/dept-inv.md alone: OAuth2
 * client credentials with expiring tokens, applications with Idempotency-Key, a 20 requests per
 * second limit per client, signed webhooks (retried, optionally duplicated or reordered) and the
 * GET used for reconciliation. It can be told to fail: down, 5xx, slow, 429.
 */
import { createHmac, randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { SimulatorServer } from '../base.js';
import type { StoredFile } from '../material-store.js';

export type Decision = 'approved' | 'rejected' | 'returned' | null;
export type Mode = 'normal' | 'down' | '5xx' | 'slow' | '429';

export interface InvSimOptions {
  port?: number;
  clientId?: string;
  clientSecret?: string;
  webhookSecret?: string;
  /** Where webhooks go; none are sent while unset. */
  webhookUrl?: string;
  tokenTtlSeconds?: number;
  ratePerSecond?: number;
  reviewDelayMs?: number;
  decisionDelayMs?: number;
  /** The final decision for an application; null leaves it in review. Default: approved. */
  decide?: (app: Application) => Decision;
  /** Project codes the platform does not know (404) or whose state forbids the matter (422). */
  unknownProjects?: Set<string>;
  lockedProjects?: Set<string>;
  duplicateWebhooks?: boolean;
  webhookRetryMs?: number;
  /** Added to every answer, so requests are in flight long enough to be interrupted. */
  latencyMs?: number;
  /** part_size of upload sessions (the spec's is 5 MiB). */
  partSize?: number;
  /** The e-licence envelope issued with an approval, if any. */
  licence?: ((app: Application) => unknown) | null;
}

export interface Application {
  application_id: string;
  request_id: string;
  project_code: string;
  body: Record<string, unknown>;
  status: 'received' | 'reviewing' | 'approved' | 'rejected' | 'returned';
  occurred_at: string;
  opinion: string;
}

const MATTERS = new Set(['INV-SP-001', 'INV-HZ-001', 'INV-BA-001']);

export class InvSimulator extends SimulatorServer<Mode> {
  readonly apps = new Map<string, Application>();
  private readonly byRequest = new Map<string, string>();
  /** How many times each request_id was accepted with a 201 (must never exceed 1). */
  readonly accepted = new Map<string, number>();
  /** Upload sessions, their chunks (on disk) and the files completed, by application_id/material_id. */
  readonly uploads = new Map<string, { upload_id: string; application_id: string; material_id: string; size: number; sha256: string; state: 'open' | 'complete' }>();
  readonly byMaterial = new Map<string, StoredFile>();
  readonly counters = { tokenRequests: 0, submits: 0, replays: 0, rateLimited: 0, webhooksSent: 0, webhooksFailed: 0, gets: 0, uploadsOpened: 0, uploadQueries: 0, partPuts: 0, aborted: 0 };
  private tokens = new Map<string, { clientId: string; expiresAt: number }>();
  private window = new Map<string, number[]>();
  private seq = 0;
  slowMs = 3000;
  private readonly runTag = randomBytes(2).toString('hex').toUpperCase();
  readonly o: Required<Omit<InvSimOptions, 'port' | 'webhookUrl'>> & { webhookUrl?: string };

  constructor(opts: InvSimOptions = {}) {
    super('http', 'normal');
    this.o = {
      clientId: opts.clientId ?? 'gateway',
      clientSecret: opts.clientSecret ?? 'sim-client-secret',
      webhookSecret: opts.webhookSecret ?? 'sim-webhook-secret',
      tokenTtlSeconds: opts.tokenTtlSeconds ?? 7200,
      ratePerSecond: opts.ratePerSecond ?? 20,
      reviewDelayMs: opts.reviewDelayMs ?? 200,
      decisionDelayMs: opts.decisionDelayMs ?? 400,
      decide: opts.decide ?? (() => 'approved'),
      unknownProjects: opts.unknownProjects ?? new Set(),
      lockedProjects: opts.lockedProjects ?? new Set(),
      duplicateWebhooks: opts.duplicateWebhooks ?? false,
      webhookRetryMs: opts.webhookRetryMs ?? 250,
      latencyMs: opts.latencyMs ?? 0,
      partSize: opts.partSize ?? 5 * 1024 * 1024,
      licence: opts.licence ?? null,
      ...(opts.webhookUrl ? { webhookUrl: opts.webhookUrl } : {}),
    };
    const server = http.createServer((req, res) => void this.handle(req, res));
    this.serve(server);
  }

  setWebhookUrl(url: string) {
    this.o.webhookUrl = url;
  }

  revokeTokens() {
    this.tokens.clear();
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    try {
      for await (const c of req) chunks.push(c as Buffer);
    } catch {
      this.counters.aborted++; // the caller broke the request off: nothing is kept
      return;
    }
    const raw = Buffer.concat(chunks);
    if (this.mode === 'down') return req.socket.destroy();
    if (this.mode === 'slow') await new Promise((r) => setTimeout(r, this.slowMs));
    if (this.o.latencyMs) await new Promise((r) => setTimeout(r, this.o.latencyMs));
    if (this.mode === '5xx') return send(res, 503, { error_code: 'UNAVAILABLE', message: '系统维护中' });
    const url = new URL(req.url ?? '/', 'http://sim');
    try {
      if (req.method === 'POST' && url.pathname === '/oauth2/token') return this.token(req, raw, res);
      const client = this.authorise(req, res);
      if (!client) return;
      if (this.mode === '429' || !this.withinRate(client)) {
        this.counters.rateLimited++;
        res.setHeader('Retry-After', '1');
        return send(res, 429, { error_code: 'RATE_LIMITED' });
      }
      let m = /^\/api\/v1\/projects\/([^/]+)\/applications$/.exec(url.pathname);
      if (req.method === 'POST' && m) return this.apply(decodeURIComponent(m[1]!), req, raw, res);
      if (req.method === 'POST' && url.pathname === '/api/v1/uploads') return this.openUpload(raw, res);
      m = /^\/api\/v1\/uploads\/([^/]+)\/parts\/(\d+)$/.exec(url.pathname);
      if (req.method === 'PUT' && m) return this.putPart(m[1]!, Number(m[2]), req, raw, res);
      m = /^\/api\/v1\/uploads\/([^/]+)\/complete$/.exec(url.pathname);
      if (req.method === 'POST' && m) return void this.completeUpload(m[1]!, res);
      m = /^\/api\/v1\/uploads\/([^/]+)$/.exec(url.pathname);
      if (req.method === 'GET' && m) {
        const u = this.uploads.get(m[1]!);
        if (!u) return send(res, 404, { error_code: 'UPLOAD_NOT_FOUND' });
        this.counters.uploadQueries++;
        return send(res, 200, { parts_received: this.materials.held(u.upload_id).map((i) => i + 1), state: u.state });
      }
      m = /^\/api\/v1\/applications\/([^/]+)$/.exec(url.pathname);
      if (req.method === 'GET' && m) {
        this.counters.gets++;
        const app = this.apps.get(decodeURIComponent(m[1]!));
        if (!app) return send(res, 404, { error_code: 'APPLICATION_NOT_FOUND' });
        return send(res, 200, this.statusBody(app));
      }
      return send(res, 404, { error_code: 'NOT_FOUND' });
    } catch (e) {
      return send(res, 500, { error_code: 'INTERNAL', message: (e as Error).message });
    }
  }

  private openUpload(raw: Buffer, res: ServerResponse) {
    let b: Record<string, unknown>;
    try {
      b = JSON.parse(raw.toString('utf8'));
    } catch {
      return send(res, 400, { error_code: 'VALIDATION_FAILED', details: [{ field: '(body)', reason: 'not JSON' }] });
    }
    if (typeof b.application_id !== 'string' || !this.apps.has(b.application_id)) return send(res, 404, { error_code: 'APPLICATION_NOT_FOUND' });
    if (typeof b.material_id !== 'string' || !b.material_id) return send(res, 400, { error_code: 'VALIDATION_FAILED', details: [{ field: 'material_id', reason: '必填' }] });
    if (typeof b.file_name !== 'string' || !b.file_name) return send(res, 400, { error_code: 'VALIDATION_FAILED', details: [{ field: 'file_name', reason: '必填' }] });
    if (typeof b.size !== 'number' || !Number.isInteger(b.size) || b.size < 0 || b.size > 2 * 1024 ** 3) return send(res, 400, { error_code: 'VALIDATION_FAILED', details: [{ field: 'size', reason: '0 到 2 GiB' }] });
    if (typeof b.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(b.sha256)) return send(res, 400, { error_code: 'VALIDATION_FAILED', details: [{ field: 'sha256', reason: '须为64位小写十六进制' }] });
    const upload_id = `UP${randomBytes(8).toString('hex')}`;
    this.uploads.set(upload_id, { upload_id, application_id: b.application_id, material_id: b.material_id, size: b.size, sha256: b.sha256, state: 'open' });
    this.counters.uploadsOpened++;
    return send(res, 201, { upload_id, part_size: this.o.partSize });
  }

  private putPart(id: string, n: number, req: IncomingMessage, raw: Buffer, res: ServerResponse) {
    const u = this.uploads.get(id);
    if (!u || u.state !== 'open') return send(res, 404, { error_code: 'UPLOAD_NOT_FOUND' });
    if (req.headers['content-type'] !== 'application/octet-stream') return send(res, 415, { error_code: 'UNSUPPORTED_MEDIA_TYPE' });
    const count = Math.max(1, Math.ceil(u.size / this.o.partSize));
    if (n < 1 || n > count) return send(res, 400, { error_code: 'VALIDATION_FAILED', details: [{ field: 'n', reason: `1 到 ${count}` }] });
    const expected = n < count ? this.o.partSize : u.size - this.o.partSize * (count - 1);
    if (raw.length !== expected) return send(res, 400, { error_code: 'VALIDATION_FAILED', details: [{ field: 'part', reason: `须为 ${expected} 字节` }] });
    this.materials.putChunk(id, n - 1, raw);
    this.counters.partPuts++;
    return send(res, 200, { part: n });
  }

  private async completeUpload(id: string, res: ServerResponse) {
    const u = this.uploads.get(id);
    if (!u || u.state !== 'open') return send(res, 404, { error_code: 'UPLOAD_NOT_FOUND' });
    const count = Math.max(1, Math.ceil(u.size / this.o.partSize));
    const missing = this.materials.missing(id, count);
    if (missing.length) return send(res, 422, { error_code: 'MISSING_PARTS', missing: missing.map((i) => i + 1) });
    const r = await this.materials.complete(id, count, u.sha256, u.size);
    if (r === 'mismatch' || r === 'missing') {
      this.uploads.delete(id);
      return send(res, 422, { error_code: 'CHECKSUM_MISMATCH' });
    }
    u.state = 'complete';
    this.byMaterial.set(`${u.application_id}/${u.material_id}`, r);
    return send(res, 200, { file_id: r.fileId });
  }

  private token(req: IncomingMessage, raw: Buffer, res: ServerResponse) {
    this.counters.tokenRequests++;
    if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) return send(res, 400, { error: 'invalid_request' });
    const f = new URLSearchParams(raw.toString());
    if (f.get('grant_type') !== 'client_credentials') return send(res, 400, { error: 'unsupported_grant_type' });
    if (f.get('client_id') !== this.o.clientId || f.get('client_secret') !== this.o.clientSecret) return send(res, 401, { error: 'invalid_client' });
    if (f.get('scope') !== 'approval') return send(res, 400, { error: 'invalid_scope' });
    const token = randomBytes(24).toString('hex');
    this.tokens.set(token, { clientId: this.o.clientId, expiresAt: Date.now() + this.o.tokenTtlSeconds * 1000 });
    return send(res, 200, { access_token: token, token_type: 'Bearer', expires_in: this.o.tokenTtlSeconds });
  }

  private authorise(req: IncomingMessage, res: ServerResponse): string | null {
    const m = /^Bearer (\S+)$/.exec(String(req.headers.authorization ?? ''));
    const t = m ? this.tokens.get(m[1]!) : undefined;
    if (!t || t.expiresAt < Date.now()) {
      send(res, 401, { error: 'invalid_token' });
      return null;
    }
    return t.clientId;
  }

  private withinRate(client: string): boolean {
    const now = Date.now();
    const w = (this.window.get(client) ?? []).filter((t) => t > now - 1000);
    if (w.length >= this.o.ratePerSecond) {
      this.window.set(client, w);
      return false;
    }
    w.push(now);
    this.window.set(client, w);
    return true;
  }

  private apply(projectCode: string, req: IncomingMessage, raw: Buffer, res: ServerResponse) {
    this.counters.submits++;
    let b: Record<string, unknown>;
    try {
      b = JSON.parse(raw.toString('utf8'));
      if (!b || typeof b !== 'object' || Array.isArray(b)) throw new Error();
    } catch {
      return send(res, 400, { error_code: 'VALIDATION_FAILED', details: [{ field: '(body)', reason: 'not a JSON object' }] });
    }
    const details = validateApplication(b, req.headers['idempotency-key']);
    if (details.length) return send(res, 400, { error_code: 'VALIDATION_FAILED', details });
    const requestId = b.request_id as string;
    const known = this.byRequest.get(requestId);
    if (known) {
      this.counters.replays++;
      res.setHeader('Idempotent-Replay', 'true');
      return send(res, 200, { application_id: known, status: 'received' });
    }
    if (!/^\d{4}-\d{6}-\d{2}-\d{2}-\d{6}$/.test(projectCode) || this.o.unknownProjects.has(projectCode)) return send(res, 404, { error_code: 'PROJECT_NOT_FOUND' });
    if (this.o.lockedProjects.has(projectCode)) return send(res, 422, { error_code: 'PROJECT_STATE_INVALID', message: '项目已终止，不能办理该事项' });
    // Unique across simulator restarts too (a real department never reuses an id; the demo's Redis outlives a run).
    const id = `INV-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-${this.runTag}${String(++this.seq).padStart(6, '0')}`;
    const app: Application = { application_id: id, request_id: requestId, project_code: projectCode, body: b, status: 'received', occurred_at: new Date().toISOString(), opinion: '' };
    this.apps.set(id, app);
    this.byRequest.set(requestId, id);
    this.accepted.set(requestId, (this.accepted.get(requestId) ?? 0) + 1);
    this.emit(app);
    this.later(this.o.reviewDelayMs, () => {
      this.transition(app, 'reviewing', '');
      this.later(this.o.decisionDelayMs, () => {
        const d = this.o.decide(app);
        if (d) this.transition(app, d, d === 'approved' ? '同意' : d === 'rejected' ? '不符合产业政策，不予核准' : '请补充项目用地预审意见');
      });
    });
    return send(res, 201, { application_id: id, status: 'received' });
  }

  transition(app: Application, status: Application['status'], opinion: string) {
    app.status = status;
    app.opinion = opinion;
    // Strictly increasing times so the receiver can order events.
    const last = Date.parse(app.occurred_at);
    app.occurred_at = new Date(Math.max(Date.now(), last + 1)).toISOString();
    this.emit(app);
  }

  private statusBody(app: Application) {
    return {
      event: 'application.status_changed',
      application_id: app.application_id,
      request_id: app.request_id,
      status: app.status,
      occurred_at: app.occurred_at,
      opinion: app.opinion,
      ...(app.status === 'approved' && this.o.licence ? { licence: this.o.licence(app) } : {}),
    };
  }

  /** Sends a webhook; a non-2xx answer or no answer is retried (the platform retries for 24 h). */
  private emit(app: Application) {
    const body = JSON.stringify(this.statusBody(app));
    const copies = this.o.duplicateWebhooks ? 2 : 1;
    for (let i = 0; i < copies; i++) this.deliver(body, 0);
  }

  private deliver(body: string, attempt: number) {
    const target = this.o.webhookUrl;
    if (!target || attempt > 40) return;
    const t = Math.floor(Date.now() / 1000);
    const sig = createHmac('sha256', this.o.webhookSecret).update(`${t}.${body}`).digest('hex');
    const req = http.request(target, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Inv-Signature': `t=${t},v1=${sig}` }, timeout: 5000 }, (res) => {
      res.resume();
      if (res.statusCode && res.statusCode >= 200 && res.statusCode < 300) this.counters.webhooksSent++;
      else {
        this.counters.webhooksFailed++;
        this.later(this.o.webhookRetryMs * Math.min(8, attempt + 1), () => this.deliver(body, attempt + 1));
      }
    });
    req.on('error', () => {
      this.counters.webhooksFailed++;
      this.later(this.o.webhookRetryMs * Math.min(8, attempt + 1), () => this.deliver(body, attempt + 1));
    });
    req.on('timeout', () => req.destroy());
    req.end(body);
  }
}

function validateApplication(b: Record<string, unknown>, idemHeader: unknown): { field: string; reason: string }[] {
  const d: { field: string; reason: string }[] = [];
  const str = (v: unknown) => typeof v === 'string' && v.length > 0;
  if (!str(b.request_id)) d.push({ field: 'request_id', reason: '必填' });
  else if (idemHeader !== b.request_id) d.push({ field: 'Idempotency-Key', reason: '必须与 request_id 一致' });
  if (!MATTERS.has(b.matter_code as string)) d.push({ field: 'matter_code', reason: '事项编码无效' });
  if (!str(b.project_name)) d.push({ field: 'project_name', reason: '必填' });
  const cu = b.construction_unit as Record<string, unknown> | undefined;
  if (!cu || typeof cu !== 'object') d.push({ field: 'construction_unit', reason: '必填' });
  else {
    if (!str(cu.name)) d.push({ field: 'construction_unit.name', reason: '必填' });
    if (typeof cu.uscc !== 'string' || !/^[0-9A-HJ-NPQRTUWXY]{18}$/.test(cu.uscc)) d.push({ field: 'construction_unit.uscc', reason: '统一社会信用代码格式错误' });
  }
  if (typeof b.total_investment_wan !== 'string' || !/^\d+(\.\d{1,4})?$/.test(b.total_investment_wan))
    d.push({ field: 'total_investment_wan', reason: '须为最多4位小数的十进制字符串' });
  if (b.start_year !== undefined && !Number.isInteger(b.start_year)) d.push({ field: 'start_year', reason: '须为整数' });
  if (b.extra !== undefined && (typeof b.extra !== 'object' || b.extra === null || Array.isArray(b.extra))) d.push({ field: 'extra', reason: '须为对象' });
  return d;
}

function send(res: ServerResponse, status: number, body: unknown) {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(s) });
  res.end(s);
}
