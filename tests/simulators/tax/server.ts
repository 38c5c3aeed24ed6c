/**
 * Simulator of the 税务 tax system, built from specs/dept-tax.md alone (its signing is written here
 * again, independently of the connector): signed requests checked both ways (app id, ±300 s
 * timestamp, nonces remembered 10 minutes), registrations with bizSerialNo idempotency, a rate
 * limit with 429/4290 and Retry-After, signed webhooks retried on any non-0000 answer (optionally
 * duplicated or out of order), and the GET used for reconciliation. It can be told to fail:
 * down, 5xx, slow, 429.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { SimulatorServer } from '../base.js';

export type TaxStatus = 'ACCEPTED' | 'REVIEWING' | 'APPROVED' | 'REJECTED' | 'RETURNED';
export type TaxMode = 'normal' | 'down' | '5xx' | 'slow' | '429';

export interface TaxSimOptions {
  appId?: string;
  appSecret?: string;
  webhookUrl?: string;
  ratePerSecond?: number;
  reviewDelayMs?: number;
  decisionDelayMs?: number;
  decide?: (reg: Registration) => 'APPROVED' | 'REJECTED' | 'RETURNED' | null;
  /** Taxpayers already registered: SWDJ01 for them is 3002. */
  registered?: Set<string>;
  duplicateWebhooks?: boolean;
  /** Send the decision before the review event (statusTime still orders them). */
  reorderWebhooks?: boolean;
  /** The spec's 1, 2, 4, 8, 16 minutes, scaled: the first retry waits this long. */
  webhookRetryMs?: number;
  /** Shift of the webhook signer's clock (to test the gateway's timestamp window). */
  webhookClockSkewMs?: number;
}

export interface Registration {
  applyNo: string;
  bizSerialNo: string;
  body: Record<string, unknown>;
  status: TaxStatus;
  statusTime: string;
  opinion: string;
}

const BIZ_TYPES = new Set(['SWDJ01', 'SWDJ02', 'FPSL01']);
const TAX_MAX_FILE = 50 * 1024 * 1024;
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const hmac = (secret: string, s: string) => createHmac('sha256', secret).update(s).digest('hex');

export class TaxSimulator extends SimulatorServer<TaxMode> {
  readonly regs = new Map<string, Registration>();
  private readonly bySerial = new Map<string, string>();
  readonly accepted = new Map<string, number>();
  readonly counters = { submits: 0, replays: 0, rateLimited: 0, signatureRefused: 0, webhooksSent: 0, webhooksFailed: 0, gets: 0, materialPuts: 0, tooLarge: 0, aborted: 0 };
  /** Every request's signing headers as received (to check nonces are fresh). */
  readonly nonces: string[] = [];
  slowMs = 3000;
  private seen = new Map<string, number>();
  private window: number[] = [];
  private seq = 0;
  private readonly runTag = randomBytes(2).toString('hex').toUpperCase();
  readonly o: Required<Omit<TaxSimOptions, 'webhookUrl'>> & { webhookUrl?: string };

  constructor(opts: TaxSimOptions = {}) {
    super('http', 'normal');
    this.o = {
      appId: opts.appId ?? 'gateway',
      appSecret: opts.appSecret ?? 'sim-tax-secret',
      ratePerSecond: opts.ratePerSecond ?? 50,
      reviewDelayMs: opts.reviewDelayMs ?? 200,
      decisionDelayMs: opts.decisionDelayMs ?? 400,
      decide: opts.decide ?? (() => 'APPROVED'),
      registered: opts.registered ?? new Set(),
      duplicateWebhooks: opts.duplicateWebhooks ?? false,
      reorderWebhooks: opts.reorderWebhooks ?? false,
      webhookRetryMs: opts.webhookRetryMs ?? 250,
      webhookClockSkewMs: opts.webhookClockSkewMs ?? 0,
      ...(opts.webhookUrl ? { webhookUrl: opts.webhookUrl } : {}),
    };
    const server = http.createServer((req, res) => void this.handle(req, res));
    this.serve(server);
  }

  setWebhookUrl(url: string) {
    this.o.webhookUrl = url;
  }

  private answer(res: ServerResponse, status: number, code: string, message: string, data?: unknown, headers: Record<string, string> = {}) {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify({ code, message, ...(data !== undefined ? { data } : {}) }));
  }

  /** Checks a request's signature as the spec says; answers 401 itself when it fails. */
  private verify(req: IncomingMessage, raw: Buffer, res: ServerResponse): boolean {
    const h = (k: string) => (typeof req.headers[k] === 'string' ? (req.headers[k] as string) : '');
    const refuse = (code: string, message: string) => {
      this.counters.signatureRefused++;
      this.answer(res, 401, code, message);
      return false;
    };
    if (h('x-app-id') !== this.o.appId) return refuse('1003', '未知应用');
    const ts = h('x-timestamp');
    const nonce = h('x-nonce');
    if (!/^\d+$/.test(ts) || Math.abs(Date.now() - Number(ts)) > 300_000) return refuse('1002', '时间戳过期');
    if (!/^[A-Za-z0-9]{16,64}$/.test(nonce)) return refuse('1001', '签名错误');
    const now = Date.now();
    for (const [n, at] of this.seen) if (now - at > 600_000) this.seen.delete(n);
    if (this.seen.has(nonce)) return refuse('1002', '随机数重复');
    // Material uploads sign X-Content-SHA256 in place of the body hash.
    const isMaterial = req.method === 'PUT' && (req.url ?? '').startsWith('/api/v2/materials/');
    const bodyHash = isMaterial ? h('x-content-sha256') : sha256(raw);
    const sts = [req.method, req.url, ts, nonce, bodyHash].join('\n');
    if (hmac(this.o.appSecret, sts) !== h('x-signature')) return refuse('1001', '签名错误');
    this.seen.set(nonce, now);
    this.nonces.push(nonce);
    return true;
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const isMaterial = req.method === 'PUT' && /^\/api\/v2\/materials\/[^/]+\/[^/]+$/.test((req.url ?? '').split('?')[0]!);
    if (isMaterial) {
      const len = req.headers['content-length'];
      if (len === undefined) return this.answer(res, 411, '3001', 'Content-Length 必填');
      if (Number(len) > TAX_MAX_FILE) {
        this.counters.tooLarge++;
        res.setHeader('Connection', 'close');
        return this.answer(res, 413, '4013', '文件超过 50 MiB');
      }
    }
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
    if (this.mode === '5xx') return this.answer(res, 503, '5000', '系统繁忙');
    if (!this.verify(req, raw, res)) return;
    const now = Date.now();
    this.window = this.window.filter((t) => now - t < 1000);
    if (this.mode === '429' || this.window.length >= this.o.ratePerSecond) {
      this.counters.rateLimited++;
      return this.answer(res, 429, '4290', '请求过于频繁', undefined, { 'Retry-After': '1' });
    }
    this.window.push(now);
    const url = new URL(req.url ?? '/', 'http://sim');
    if (req.method === 'POST' && url.pathname === '/api/v2/tax-registrations') return this.register(raw, res);
    const mm = /^\/api\/v2\/materials\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'PUT' && mm) return this.material(decodeURIComponent(mm[1]!), decodeURIComponent(mm[2]!), req, raw, res);
    const m = /^\/api\/v2\/tax-registrations\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && m) {
      this.counters.gets++;
      const reg = this.regs.get(decodeURIComponent(m[1]!));
      return reg ? this.answer(res, 200, '0000', '成功', this.statusBody(reg)) : this.answer(res, 404, '3004', '申请不存在');
    }
    return this.answer(res, 404, '3404', '接口不存在');
  }

  private async material(applyNo: string, materialId: string, req: IncomingMessage, raw: Buffer, res: ServerResponse) {
    if (!this.regs.has(applyNo)) return this.answer(res, 404, '3004', '申请不存在');
    if (req.headers['content-type'] !== 'application/octet-stream') return this.answer(res, 400, '3001', 'Content-Type 须为 application/octet-stream');
    const sha = String(req.headers['x-content-sha256'] ?? '');
    if (!/^[0-9a-f]{64}$/.test(sha)) return this.answer(res, 400, '3001', 'X-Content-SHA256 格式错误');
    if (!/^UTF-8''[\w%.\-~!*'()]+$/.test(String(req.headers['x-file-name'] ?? ''))) return this.answer(res, 400, '3001', 'X-File-Name 须为 RFC 5987 编码');
    this.counters.materialPuts++;
    const key = `${applyNo}/${materialId}`;
    // One PUT is one file: a second replaces the first.
    this.materials.discard(key);
    this.materials.putChunk(key, 0, raw);
    const r = await this.materials.complete(key, 1, sha, Number(req.headers['content-length']));
    if (r === 'mismatch' || r === 'missing') return this.answer(res, 400, '4001', '文件内容与 X-Content-SHA256 不一致');
    return this.answer(res, 200, '0000', '上传成功', { fileId: r.fileId });
  }

  private register(raw: Buffer, res: ServerResponse) {
    let b: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(raw.toString('utf8'));
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      b = v as Record<string, unknown>;
    } catch {
      return this.answer(res, 400, '3001', '请求体不是JSON对象');
    }
    this.counters.submits++;
    const bad = validate(b);
    if (bad) return this.answer(res, 400, '3001', bad);
    const serial = b.bizSerialNo as string;
    const known = this.bySerial.get(serial);
    if (known) {
      this.counters.replays++;
      return this.answer(res, 200, '2001', '业务流水号已受理', { applyNo: known });
    }
    if (b.bizType === 'SWDJ01' && this.o.registered.has(b.nsrsbh as string)) return this.answer(res, 400, '3002', '纳税人已登记，不能重复办理新办套餐');
    const applyNo = `TX${new Date().toISOString().slice(0, 10).replace(/-/g, '')}${this.runTag}${String(++this.seq).padStart(6, '0')}`;
    const reg: Registration = { applyNo, bizSerialNo: serial, body: b, status: 'ACCEPTED', statusTime: bjTime(new Date()), opinion: '' };
    this.regs.set(applyNo, reg);
    this.bySerial.set(serial, applyNo);
    this.accepted.set(serial, (this.accepted.get(serial) ?? 0) + 1);
    this.answer(res, 200, '0000', '受理成功', { applyNo });
    const events: (() => void)[] = [];
    this.later(this.o.reviewDelayMs, () => {
      this.transition(reg, 'REVIEWING', '', events);
      this.later(this.o.decisionDelayMs, () => {
        const d = this.o.decide(reg);
        if (d) this.transition(reg, d, d === 'APPROVED' ? '准予登记' : d === 'REJECTED' ? '不予登记：经营地址核查不符' : '请补正法定代表人身份证明', events);
        if (this.o.reorderWebhooks) for (const e of events.reverse()) e();
      });
    });
    if (!this.o.reorderWebhooks) this.emit(reg);
  }

  transition(reg: Registration, status: TaxStatus, opinion: string, queue?: (() => void)[]) {
    reg.status = status;
    reg.statusTime = bjTime(new Date(Date.now() + 1000 * (status === 'REVIEWING' ? 1 : 2)));
    reg.opinion = opinion;
    const body = JSON.stringify(this.statusBody(reg));
    if (this.o.reorderWebhooks && queue) queue.push(() => this.send(body, 0));
    else this.send(body, 0);
  }

  statusBody(reg: Registration) {
    return { applyNo: reg.applyNo, bizSerialNo: reg.bizSerialNo, status: reg.status, statusTime: reg.statusTime, opinion: reg.opinion };
  }

  private emit(reg: Registration) {
    this.send(JSON.stringify(this.statusBody(reg)), 0);
  }

  private send(body: string, attempt: number) {
    const copies = this.o.duplicateWebhooks ? 2 : 1;
    for (let i = 0; i < copies; i++) this.deliver(body, attempt);
  }

  private deliver(body: string, attempt: number) {
    const target = this.o.webhookUrl;
    if (!target || attempt > 5) return;
    const u = new URL(target);
    const ts = String(Date.now() + this.o.webhookClockSkewMs);
    const nonce = randomBytes(16).toString('hex');
    const sig = hmac(this.o.appSecret, ['POST', u.pathname + u.search, ts, nonce, sha256(body)].join('\n'));
    const retry = () => {
      this.counters.webhooksFailed++;
      // 1, 2, 4, 8, 16 minutes in the spec; scaled here.
      this.later(this.o.webhookRetryMs * 2 ** attempt, () => this.deliver(body, attempt + 1));
    };
    const req = http.request(target, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-App-Id': this.o.appId, 'X-Timestamp': ts, 'X-Nonce': nonce, 'X-Signature': sig }, timeout: 5000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        let ok = false;
        try {
          ok = res.statusCode === 200 && (JSON.parse(Buffer.concat(parts).toString()) as { code?: string }).code === '0000';
        } catch {
          ok = false;
        }
        if (ok) this.counters.webhooksSent++;
        else retry();
      });
    });
    req.on('error', retry);
    req.on('timeout', () => req.destroy());
    req.end(body);
  }
}

function bjTime(d: Date): string {
  return new Date(d.getTime() + 8 * 3600_000).toISOString().slice(0, 19) + '+08:00';
}

/** The first field at fault, named in the message as the spec says. */
function validate(b: Record<string, unknown>): string | null {
  const str = (v: unknown) => typeof v === 'string' && v.trim().length > 0;
  if (!str(b.bizSerialNo) || (b.bizSerialNo as string).length > 64) return 'bizSerialNo 必填';
  if (!BIZ_TYPES.has(b.bizType as string)) return 'bizType 无效';
  if (typeof b.nsrsbh !== 'string' || !/^[0-9A-HJ-NPQRTUWXY]{18}$/.test(b.nsrsbh)) return 'nsrsbh 格式错误';
  for (const f of ['nsrmc', 'fddbrxm', 'fddbrsfzjhm', 'scjydz', 'lxdh']) if (!str(b[f])) return `${f} 必填`;
  if (!['201', '208', '227'].includes(b.fddbrsfzjlx as string)) return 'fddbrsfzjlx 无效';
  if (b.kyrq !== undefined && (typeof b.kyrq !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(b.kyrq))) return 'kyrq 格式应为 YYYY-MM-DD';
  if (b.extra !== undefined) {
    if (!b.extra || typeof b.extra !== 'object' || Array.isArray(b.extra)) return 'extra 须为对象';
    for (const [k, v] of Object.entries(b.extra)) if (typeof v !== 'string') return `extra.${k} 须为字符串`;
  }
  return null;
}
