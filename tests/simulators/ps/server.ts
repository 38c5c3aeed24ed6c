/**
 * Simulator of the 公安 population system, built from specs/dept-ps.md alone: HTTPS that demands
 * a client certificate from its own CA, GBK bytes both ways (a request that is not valid GBK, or
 * declares another encoding, is CODE 10), unique SEQs (a repeated SEQ gets CODE 01 and the first
 * answer), an identity register (GMSFHM and XM must match: CODE 20), and JG_CX statuses that move
 * with time. It records every request's raw bytes. It can be told to fail: down, busy (90), 99.
 */
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { XMLParser } from 'fast-xml-parser';
import iconv from 'iconv-lite';
import { SimulatorServer } from '../base.js';

export type PsMode = 'normal' | 'down' | 'busy' | 'internal';
export interface PsSimOptions {
  key: Buffer;
  cert: Buffer;
  /** The department's CA: client certificates must chain to it. */
  ca: Buffer;
  sender?: string;
  reviewDelayMs?: number;
  decisionDelayMs?: number;
  decide?: (b: PsBusiness) => '3' | '4' | '5' | null;
  /** The register: GMSFHM → XM. A number not in it is accepted; a number with another name is CODE 20. */
  register?: Map<string, string>;
}

export interface PsBusiness {
  slbh: string;
  seq: string;
  ywlx: string;
  sqr: Record<string, string>;
  kzxx: { DM: string; value: string }[];
  acceptedAt: number;
  zt: '1' | '2' | '3' | '4' | '5';
  ztsj: number;
  yj: string;
}

const YWLX = new Set(['HJ0101', 'HJ0201', 'HJ0301']);
const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', parseTagValue: false, trimValues: true, isArray: (n) => n === 'XX' });
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const bj = (ms: number) => new Date(ms + 8 * 3600_000).toISOString().slice(0, 19).replace(/[-T:]/g, '');

export class PsSimulator extends SimulatorServer<PsMode> {
  readonly business = new Map<string, PsBusiness>();
  readonly accepted = new Map<string, number>();
  /** Raw request bodies, as bytes. */
  readonly requests: Buffer[] = [];
  readonly counters = { submits: 0, replays: 0, queries: 0, tlsRefused: 0, chunkPuts: 0, aborted: 0 };
  readonly queries = new Map<string, number[]>();
  private answers = new Map<string, string>();
  private seq = 0;
  private readonly runTag = randomBytes(2).toString('hex').toUpperCase();
  readonly o: Required<PsSimOptions>;

  constructor(opts: PsSimOptions) {
    super('https', 'normal');
    this.o = { sender: 'GATEWAY', reviewDelayMs: 200, decisionDelayMs: 400, decide: () => '3', register: new Map(), ...opts };
    const server = https.createServer({ key: opts.key, cert: opts.cert, ca: opts.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => void this.handle(req, res));
    server.on('tlsClientError', () => this.counters.tlsRefused++);
    this.serve(server, 'secureConnection');
  }

  private send(res: ServerResponse, seq: string, ret: string, remember = true) {
    const xml = `<?xml version="1.0" encoding="GBK"?><PACKET><HEAD><SENDER>GAB</SENDER><SERVICE>RET</SERVICE><SEQ>${esc(seq)}</SEQ><TIME>${bj(Date.now())}</TIME></HEAD><RETURN>${ret}</RETURN></PACKET>`;
    if (remember && /^[A-Za-z0-9]{1,32}$/.test(seq)) this.answers.set(seq, ret);
    res.writeHead(200, { 'Content-Type': 'text/xml; charset=GBK' }).end(iconv.encode(xml, 'gbk'));
  }
  private code(res: ServerResponse, seq: string, code: string, msg: string, extra = '', remember = true) {
    this.send(res, seq, `<CODE>${code}</CODE><MSG>${esc(msg)}</MSG>${extra}`, remember);
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
    if (!(req.socket as TLSSocket).authorized) return res.writeHead(403).end();
    // Material chunks are not kept here (the material store has them): only the small packets.
    if (raw.length < 64 * 1024) this.requests.push(raw);
    if (req.method !== 'POST' || req.url !== '/gab/service') return res.writeHead(404).end();
    if (!/^text\/xml;\s*charset=GBK$/i.test(String(req.headers['content-type']))) return this.code(res, '', '10', '报文编码须为GBK', '', false);
    const decl = /^<\?xml[^>]*encoding="([^"]+)"/.exec(raw.subarray(0, 100).toString('latin1'));
    const text = iconv.decode(raw, 'gbk');
    if (!decl || decl[1]!.toUpperCase() !== 'GBK' || text.includes('\uFFFD') || /<!DOCTYPE|<!ENTITY/i.test(text)) return this.code(res, '', '10', '报文格式错误', '', false);
    let p: Record<string, any>;
    try {
      p = (parser.parse(text) as Record<string, any>).PACKET;
      if (!p?.HEAD) throw new Error('no HEAD');
    } catch {
      return this.code(res, '', '10', '报文格式错误', '', false);
    }
    const seq = String(p.HEAD.SEQ ?? '');
    if (!/^[A-Za-z0-9]{1,32}$/.test(seq)) return this.code(res, seq, '10', 'SEQ 格式错误', '', false);
    const first = this.answers.get(seq);
    if (first) {
      this.counters.replays++;
      // The first answer again, with CODE 01.
      return this.send(res, seq, first.replace(/<CODE>\d\d<\/CODE>/, '<CODE>01</CODE>'), false);
    }
    if (p.HEAD.SENDER !== this.o.sender) return this.code(res, seq, '10', '发送方代码未登记');
    if (!/^\d{14}$/.test(String(p.HEAD.TIME ?? ''))) return this.code(res, seq, '10', 'TIME 格式错误');
    if (this.mode === 'busy') return this.code(res, seq, '90', '系统繁忙', '', false);
    if (this.mode === 'internal') return this.code(res, seq, '99', '内部错误', '', false);
    if (p.HEAD.SERVICE === 'HJ_SB') return this.submit(res, seq, p.BODY ?? {});
    if (p.HEAD.SERVICE === 'JG_CX') return this.query(res, seq, String(p.BODY?.SLBH ?? ''));
    if (p.HEAD.SERVICE === 'CL_SC') return void this.chunk(res, seq, p.BODY ?? {});
    return this.code(res, seq, '10', `SERVICE ${String(p.HEAD.SERVICE)} 不支持`);
  }

  private submit(res: ServerResponse, seq: string, body: Record<string, any>) {
    this.counters.submits++;
    const s = (body.SQR ?? {}) as Record<string, string>;
    const bad = (() => {
      if (!YWLX.has(String(body.YWLX))) return 'YWLX 业务类型无效';
      if (!/^\d{17}[\dX]$/.test(s.GMSFHM ?? '')) return 'GMSFHM 公民身份号码格式错误';
      if (!s.XM) return 'XM 姓名不能为空';
      if (!['0', '1', '2'].includes(s.XB ?? '')) return 'XB 性别代码无效';
      if (s.MZ !== undefined && !/^(0[1-9]|[1-4]\d|5[0-6])$/.test(s.MZ)) return 'MZ 民族代码无效';
      if (!/^\d{8}$/.test(s.CSRQ ?? '')) return 'CSRQ 出生日期格式错误';
      return null;
    })();
    if (bad) return this.code(res, seq, '11', bad);
    const known = this.o.register.get(s.GMSFHM!);
    if (known !== undefined && known !== s.XM) return this.code(res, seq, '20', '公民身份号码与姓名不匹配');
    const slbh = `GA${bj(Date.now()).slice(0, 8)}${this.runTag}${String(++this.seq).padStart(6, '0')}`;
    const now = Date.now();
    const kz = (body.KZXX?.XX ?? []) as ({ '@_DM': string; '#text'?: string } | string)[];
    this.business.set(slbh, { slbh, seq, ywlx: String(body.YWLX), sqr: s, kzxx: kz.map((x) => (typeof x === 'string' ? { DM: '', value: x } : { DM: x['@_DM'], value: x['#text'] ?? '' })), acceptedAt: now, zt: '1', ztsj: now, yj: '' });
    this.accepted.set(seq, (this.accepted.get(seq) ?? 0) + 1);
    this.code(res, seq, '00', '受理成功', `<SLBH>${slbh}</SLBH>`);
  }

  private async chunk(res: ServerResponse, seq: string, b: Record<string, any>) {
    const slbh = String(b.SLBH ?? '');
    if (!this.business.has(slbh)) return this.code(res, seq, '11', 'SLBH 不存在');
    const i = Number(b.FPXH);
    const n = Number(b.FPZS);
    const sha = String(b.SHA256 ?? '');
    if (!b.CLBH || !b.WJM || !/^\d+$/.test(String(b.FPXH)) || !/^\d+$/.test(String(b.FPZS)) || n < 1 || i >= n || !/^[0-9a-f]{64}$/.test(sha)) return this.code(res, seq, '11', 'CL_SC 字段无效');
    const data = Buffer.from(String(b.NR ?? ''), 'base64');
    if (data.length > 512 * 1024) return this.code(res, seq, '11', 'NR 超过 512 KiB');
    const key = `${slbh}/${String(b.CLBH)}`;
    this.materials.putChunk(key, i, data);
    this.counters.chunkPuts++;
    const held = this.materials.held(key).length;
    if (held < n) return this.code(res, seq, '00', '已接收', `<YJS>${held}</YJS>`);
    const r = await this.materials.complete(key, n, sha);
    if (r === 'mismatch') return this.code(res, seq, '30', '材料哈希不一致');
    if (r === 'missing') return this.code(res, seq, '00', '已接收', `<YJS>${held}</YJS>`);
    return this.code(res, seq, '00', '上传完成', `<YJS>${held}</YJS><WC>1</WC>`);
  }

  private query(res: ServerResponse, seq: string, slbh: string) {
    this.counters.queries++;
    this.queries.set(slbh, [...(this.queries.get(slbh) ?? []), Date.now()]);
    const b = this.business.get(slbh);
    if (!b) return this.code(res, seq, '11', 'SLBH 不存在');
    const age = Date.now() - b.acceptedAt;
    if (b.zt === '1' && age >= this.o.reviewDelayMs) {
      b.zt = '2';
      b.ztsj = b.acceptedAt + this.o.reviewDelayMs;
    }
    if (b.zt === '2' && age >= this.o.reviewDelayMs + this.o.decisionDelayMs) {
      const d = this.o.decide(b);
      if (d) {
        b.zt = d;
        b.ztsj = b.acceptedAt + this.o.reviewDelayMs + this.o.decisionDelayMs;
        b.yj = d === '3' ? '准予登记' : d === '4' ? '不予登记' : '请补充出生医学证明';
      }
    }
    this.code(res, seq, '00', '查询成功', `<ZT>${b.zt}</ZT><ZTSJ>${bj(b.ztsj)}</ZTSJ>${b.yj ? `<YJ>${esc(b.yj)}</YJ>` : ''}`);
  }
}
