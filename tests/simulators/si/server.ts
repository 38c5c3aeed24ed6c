/**
 * Simulator of the 人社 social-security system, built from specs/dept-si.md and si.wsdl alone:
 * SOAP 1.1 with the WSDL's namespaces and element order checked strictly, WS-Security
 * UsernameToken PasswordDigest verified (±300 s, nonces remembered 600 s, FailedAuthentication
 * faults), every resultCode of the spec, and queryResult statuses that move with time. It counts
 * queryResult calls per acceptNo so tests can prove the polling rate. It can be told to fail:
 * down, busy (E9001), 500 (an HTML error page), slow.
 */
import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { XMLParser } from 'fast-xml-parser';
import { SimulatorServer } from '../base.js';

const SOAP = 'http://schemas.xmlsoap.org/soap/envelope/';
const SI = 'urn:cn:gov:si:business:v1';
const WSSE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd';
const WSU = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd';
const DIGEST_TYPE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest';

export type SiMode = 'normal' | 'down' | 'busy' | '500' | 'slow' | 'hostile';

/** What a compromised or broken department might send: entity expansion, external entities, depth. */
export const HOSTILE_SI_ANSWERS = [
  '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><r>&lol4;</r></soapenv:Body></soapenv:Envelope>',
  '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><resultCode>&xxe;</resultCode></soapenv:Body></soapenv:Envelope>',
  `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>${'<a>'.repeat(20000)}${'</a>'.repeat(20000)}</soapenv:Body></soapenv:Envelope>`,
  '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><resultCode>0',
];
export type SiDecision = '03' | '04' | '05' | null;

export interface SiSimOptions {
  username?: string;
  password?: string;
  reviewDelayMs?: number;
  decisionDelayMs?: number;
  decide?: (b: SiBusiness) => SiDecision;
  /** People already insured: SI0101 for them is E1002. */
  insured?: Set<string>;
  /** Include a licence (the e-licence envelope as XML) in approved answers. */
  licence?: (b: SiBusiness) => string | null;
}

export interface SiBusiness {
  acceptNo: string;
  serialNo: string;
  businessType: string;
  fields: Record<string, unknown>;
  acceptedAt: number;
  status: '01' | '02' | '03' | '04' | '05';
  statusTime: number;
  opinion: string;
}

const ORDER: Record<string, string[]> = {
  submitBusinessRequest: ['serialNo', 'businessType', 'person', 'unit', 'items', 'materialCount'],
  person: ['aac002', 'aac003', 'aac004', 'aac006', 'aae005', 'aae006'],
  unit: ['aab004', 'aab998'],
  queryResultRequest: ['acceptNo'],
  uploadMaterialRequest: ['acceptNo', 'materialId', 'fileName', 'chunkIndex', 'chunkCount', 'sha256', 'content'],
  queryUploadRequest: ['acceptNo', 'materialId'],
};
const REQUIRED: Record<string, string[]> = {
  submitBusinessRequest: ['serialNo', 'businessType', 'person', 'materialCount'],
  person: ['aac002', 'aac003', 'aac004', 'aac006'],
  unit: ['aab004', 'aab998'],
  queryResultRequest: ['acceptNo'],
  uploadMaterialRequest: ['acceptNo', 'materialId', 'fileName', 'chunkIndex', 'chunkCount', 'sha256', 'content'],
  queryUploadRequest: ['acceptNo', 'materialId'],
};
const BUSINESS_TYPES = new Set(['SI0101', 'SI0102', 'SI0201', 'SI0301']);

type Node = Record<string, unknown>;
const parser = new XMLParser({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', parseTagValue: false, trimValues: true, processEntities: true });

function esc(s: string) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
function bj(ms: number) {
  const d = new Date(ms + 8 * 3600_000).toISOString();
  return d.slice(0, 19).replace(/[-T:]/g, '');
}

/** Elements of an ordered node list: [name, children, attributes]. */
function elements(list: unknown): { name: string; children: unknown[]; attrs: Record<string, string> }[] {
  if (!Array.isArray(list)) return [];
  return list
    .filter((n) => n && typeof n === 'object' && !('#text' in (n as Node)))
    .map((n) => {
      const name = Object.keys(n as Node).find((k) => k !== ':@')!;
      return { name, children: (n as Node)[name] as unknown[], attrs: ((n as Node)[':@'] ?? {}) as Record<string, string> };
    });
}
function textOf(children: unknown[]): string {
  return Array.isArray(children) ? children.filter((c) => c && typeof c === 'object' && '#text' in (c as Node)).map((c) => String((c as Node)['#text'])).join('') : '';
}

/** A field fault: a business answer (resultCode E1001 naming the field), not a SOAP fault. */
class E1001 extends Error {}

class Fault extends Error {
  constructor(
    readonly code: string,
    msg: string,
  ) {
    super(msg);
  }
}

export class SiSimulator extends SimulatorServer<SiMode> {
  readonly business = new Map<string, SiBusiness>();
  private readonly bySerial = new Map<string, string>();
  readonly accepted = new Map<string, number>();
  readonly counters = { hostile: 0, submits: 0, replays: 0, authFailures: 0, queries: 0, uploadQueries: 0, chunkPuts: 0, aborted: 0 };
  /** queryResult times per acceptNo. */
  readonly queries = new Map<string, number[]>();
  /** Every request body as received. */
  readonly requests: string[] = [];
  slowMs = 3000;
  private seenNonces = new Map<string, number>();
  private seq = 0;
  private readonly runTag = randomBytes(2).toString('hex').toUpperCase();
  readonly o: Required<SiSimOptions>;

  constructor(opts: SiSimOptions = {}) {
    super('http', 'normal');
    this.o = {
      username: opts.username ?? 'gateway',
      password: opts.password ?? 'sim-si-password',
      reviewDelayMs: opts.reviewDelayMs ?? 200,
      decisionDelayMs: opts.decisionDelayMs ?? 400,
      decide: opts.decide ?? (() => '03'),
      insured: opts.insured ?? new Set(),
      licence: opts.licence ?? (() => null),
    };
    const server = http.createServer((req, res) => void this.handle(req, res));
    this.serve(server);
  }

  private reply(res: ServerResponse, status: number, bodyXml: string) {
    const xml = `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="${SOAP}"><soapenv:Body>${bodyXml}</soapenv:Body></soapenv:Envelope>`;
    res.writeHead(status, { 'Content-Type': 'text/xml; charset=utf-8' }).end(xml);
  }
  private fault(res: ServerResponse, code: string, msg: string) {
    this.reply(res, 500, `<soapenv:Fault><faultcode xmlns:wsse="${WSSE}">${code}</faultcode><faultstring>${esc(msg)}</faultstring></soapenv:Fault>`);
  }
  private answer(res: ServerResponse, op: string, fields: [string, string | undefined][], extra = '') {
    const inner = fields.filter(([, v]) => v !== undefined).map(([k, v]) => `<ns2:${k}>${esc(v!)}</ns2:${k}>`).join('');
    // A different prefix than the gateway's on purpose: only namespaces count.
    this.reply(res, 200, `<ns2:${op}Response xmlns:ns2="${SI}">${inner}${extra}</ns2:${op}Response>`);
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    try {
      for await (const c of req) chunks.push(c as Buffer);
    } catch {
      this.counters.aborted++; // the caller broke the request off: nothing is kept
      return;
    }
    if (this.mode === 'down') return req.socket.destroy();
    if (this.mode === 'slow') await new Promise((r) => setTimeout(r, this.slowMs));
    if (this.mode === '500') return res.writeHead(500, { 'Content-Type': 'text/html' }).end('<!DOCTYPE html><html><body>502 Bad Gateway</body></html>');
    if (this.mode === 'hostile') return res.writeHead(200, { 'Content-Type': 'text/xml; charset=utf-8' }).end(HOSTILE_SI_ANSWERS[this.counters.hostile++ % HOSTILE_SI_ANSWERS.length]);
    if (req.method !== 'POST' || req.url !== '/services/SiBusinessService') return res.writeHead(404).end();
    if (!/^text\/xml;\s*charset=utf-8$/i.test(String(req.headers['content-type']))) return this.fault(res, 'soapenv:Client', 'Content-Type must be text/xml; charset=utf-8');
    const raw = Buffer.concat(chunks).toString('utf8');
    this.requests.push(raw);
    try {
      if (/<!DOCTYPE|<!ENTITY/i.test(raw)) throw new Fault('soapenv:Client', 'DTDs are not accepted');
      const doc = parser.parse(raw) as unknown[];
      const env = elements(doc).find((e) => e.name.endsWith('Envelope'));
      if (!env) throw new Fault('soapenv:Client', 'no Envelope');
      const ns: Record<string, string> = {};
      const addNs = (attrs: Record<string, string>) => {
        for (const [k, v] of Object.entries(attrs)) if (k.startsWith('xmlns:')) ns[k.slice(6)] = v;
      };
      addNs(env.attrs);
      const prefixOf = (name: string) => (name.includes(':') ? name.split(':')[0]! : '');
      const local = (name: string) => name.split(':').pop()!;
      if (ns[prefixOf(env.name)] !== SOAP || local(env.name) !== 'Envelope') throw new Fault('soapenv:VersionMismatch', 'not a SOAP 1.1 envelope');
      const parts = elements(env.children);
      const header = parts.find((p) => local(p.name) === 'Header');
      const body = parts.find((p) => local(p.name) === 'Body');
      if (!body) throw new Fault('soapenv:Client', 'no Body');
      this.checkSecurity(header, ns, addNs);
      const [op] = elements(body.children);
      if (!op) throw new Fault('soapenv:Client', 'empty Body');
      addNs(op.attrs);
      if (ns[prefixOf(op.name)] !== SI) throw new Fault('soapenv:Client', `body element not in ${SI}`);
      const opName = local(op.name);
      const action = String(req.headers.soapaction ?? '');
      const expected = `"urn:si:${opName.replace(/Request$/, '')}"`;
      if (action !== expected) throw new Fault('soapenv:Client', `SOAPAction must be ${expected}`);
      let fields: Record<string, unknown>;
      try {
        fields = this.read(op, opName, ns, prefixOf(op.name));
      } catch (e) {
        if (!(e instanceof E1001)) throw e;
        if (opName === 'submitBusinessRequest') this.counters.submits++;
        return this.answer(res, opName.replace(/Request$/, ''), [['resultCode', 'E1001'], ['resultMsg', e.message]]);
      }
      if (opName === 'submitBusinessRequest') return this.submit(res, fields);
      if (opName === 'queryResultRequest') return this.query(res, fields.acceptNo as string);
      if (opName === 'uploadMaterialRequest') return void this.upload(res, fields);
      if (opName === 'queryUploadRequest') {
        if (!this.business.has(fields.acceptNo as string)) return this.answer(res, 'queryUpload', [['resultCode', 'E3002'], ['resultMsg', 'acceptNo 不存在'], ['receivedChunks', '']]);
        this.counters.uploadQueries++;
        return this.answer(res, 'queryUpload', [['resultCode', '0'], ['resultMsg', '成功'], ['receivedChunks', this.materials.held(`${fields.acceptNo}/${fields.materialId}`).join(',')]]);
      }
      throw new Fault('soapenv:Client', `operation ${opName} is not simulated`);
    } catch (e) {
      if (e instanceof Fault) return this.fault(res, e.code, e.message);
      return this.fault(res, 'soapenv:Client', `malformed request: ${(e as Error).message}`);
    }
  }

  private checkSecurity(header: { children: unknown[]; attrs: Record<string, string> } | undefined, ns: Record<string, string>, addNs: (a: Record<string, string>) => void) {
    const fail = (why: string) => {
      this.counters.authFailures++;
      return new Fault('wsse:FailedAuthentication', `The security token could not be authenticated or authorized: ${why}`);
    };
    const sec = header && elements(header.children).find((e) => e.name.endsWith('Security'));
    if (!sec) throw fail('no wsse:Security header');
    addNs(sec.attrs);
    const p = (n: string) => n.split(':')[0]!;
    if (ns[p(sec.name)] !== WSSE) throw fail('Security not in the WSS namespace');
    const tok = elements(sec.children).find((e) => e.name.endsWith('UsernameToken'));
    const parts = Object.fromEntries(elements(tok?.children).map((e) => [e.name.split(':').pop()!, e]));
    const user = parts.Username && textOf(parts.Username.children);
    const pwd = parts.Password;
    const nonce = parts.Nonce && textOf(parts.Nonce.children);
    const created = parts.Created && textOf(parts.Created.children);
    if (!parts.Created || ns[p(parts.Created.name)] !== WSU) throw fail('Created missing or not in the wsu namespace');
    if (user !== this.o.username) throw fail('unknown user');
    if (!pwd || pwd.attrs.Type !== DIGEST_TYPE) throw fail('Password must be a PasswordDigest');
    const nonceBytes = Buffer.from(nonce ?? '', 'base64');
    if (nonceBytes.length !== 16) throw fail('Nonce must be Base64 of 16 bytes');
    const t = Date.parse(created ?? '');
    if (Number.isNaN(t) || Math.abs(Date.now() - t) > 300_000) throw fail('Created is more than 300 s from the server clock');
    const now = Date.now();
    for (const [n, at] of this.seenNonces) if (now - at > 600_000) this.seenNonces.delete(n);
    if (this.seenNonces.has(nonce!)) throw fail('nonce already used');
    const digest = createHash('sha1').update(nonceBytes).update(created!, 'utf8').update(this.o.password, 'utf8').digest('base64');
    if (textOf(pwd.children) !== digest) throw fail('wrong digest');
    this.seenNonces.set(nonce!, now);
  }

  /** Reads an operation's fields, enforcing the WSDL's element order, namespace and required elements. */
  private read(node: { children: unknown[] }, type: string, ns: Record<string, string>, prefix: string): Record<string, unknown> {
    const order = ORDER[type] ?? [];
    const out: Record<string, unknown> = {};
    let last = -1;
    for (const e of elements(node.children)) {
      const [pfx, name] = e.name.includes(':') ? (e.name.split(':') as [string, string]) : ['', e.name];
      if ((ns[pfx] ?? (e.attrs.xmlns || '')) !== SI && pfx !== prefix) throw new E1001(`${name} is not in ${SI}`);
      const idx = order.indexOf(name);
      if (type !== 'items' && idx < 0) throw new E1001(`unexpected element ${name}`);
      if (type !== 'items' && idx <= last) throw new E1001(`element ${name} out of the order of si.wsdl`);
      last = idx;
      if (name === 'person' || name === 'unit') out[name] = this.read(e, name, ns, prefix);
      else if (name === 'items') out.items = elements(e.children).map((it) => ({ key: it.attrs.key, value: textOf(it.children) }));
      else out[name] = textOf(e.children);
    }
    for (const r of REQUIRED[type] ?? []) if (out[r] === undefined || out[r] === '') throw new E1001(`${type === 'submitBusinessRequest' || type === 'queryResultRequest' ? '' : `${type}.`}${r} 不能为空`);
    return out;
  }

  private submit(res: ServerResponse, f: Record<string, unknown>) {
    this.counters.submits++;
    const person = f.person as Record<string, string>;
    const check = (): string | null => {
      const serial = f.serialNo as string;
      if (serial.length > 64) return 'serialNo 长度不能超过64';
      if (!BUSINESS_TYPES.has(f.businessType as string)) return `businessType ${f.businessType} 无效`;
      if (!/^\d{17}[\dX]$/.test(person.aac002!)) return 'aac002 公民身份号码格式错误';
      if (!['1', '2', '9'].includes(person.aac004!)) return 'aac004 性别代码无效';
      if (!/^\d{8}$/.test(person.aac006!)) return 'aac006 出生日期格式应为YYYYMMDD';
      const n = Number(f.materialCount);
      if (!/^\d+$/.test(String(f.materialCount)) || n > 200) return 'materialCount 须为0到200的整数';
      for (const it of (f.items as { key?: string }[] | undefined) ?? []) if (!it.key) return 'item 缺少 key 属性';
      return null;
    };
    if (this.mode === 'busy') return this.answer(res, 'submitBusiness', [['resultCode', 'E9001'], ['resultMsg', '系统繁忙，请稍后再试']]);
    const bad = check();
    if (bad) return this.answer(res, 'submitBusiness', [['resultCode', 'E1001'], ['resultMsg', bad]]);
    const known = this.bySerial.get(f.serialNo as string);
    if (known) {
      this.counters.replays++;
      return this.answer(res, 'submitBusiness', [['resultCode', 'E2001'], ['resultMsg', '该流水号已受理'], ['acceptNo', known]]);
    }
    if (f.businessType === 'SI0101' && this.o.insured.has(person.aac002!)) return this.answer(res, 'submitBusiness', [['resultCode', 'E1002'], ['resultMsg', '该人员已参加城乡居民养老保险，不能重复参保']]);
    const acceptNo = `SI${bj(Date.now()).slice(0, 8)}${this.runTag}${String(++this.seq).padStart(5, '0')}`;
    const now = Date.now();
    this.business.set(acceptNo, { acceptNo, serialNo: f.serialNo as string, businessType: f.businessType as string, fields: f, acceptedAt: now, status: '01', statusTime: now, opinion: '' });
    this.bySerial.set(f.serialNo as string, acceptNo);
    this.accepted.set(f.serialNo as string, (this.accepted.get(f.serialNo as string) ?? 0) + 1);
    this.answer(res, 'submitBusiness', [['resultCode', '0'], ['resultMsg', '受理成功'], ['acceptNo', acceptNo]]);
  }

  private async upload(res: ServerResponse, f: Record<string, unknown>) {
    const answer = (code: string, msg: string, received = 0, complete = false) =>
      this.answer(res, 'uploadMaterial', [['resultCode', code], ['resultMsg', msg], ['received', String(received)], ['complete', String(complete)]]);
    if (this.mode === 'busy') return answer('E9001', '系统繁忙');
    const acceptNo = f.acceptNo as string;
    if (!this.business.has(acceptNo)) return answer('E3002', 'acceptNo 不存在');
    const index = Number(f.chunkIndex);
    const count = Number(f.chunkCount);
    const sha = String(f.sha256);
    if (!/^\d+$/.test(String(f.chunkIndex)) || !/^\d+$/.test(String(f.chunkCount)) || count < 1 || index >= count) return answer('E1001', 'chunkIndex/chunkCount 无效');
    if (!/^[0-9a-f]{64}$/.test(sha)) return answer('E1001', 'sha256 须为小写十六进制');
    const content = Buffer.from(String(f.content), 'base64');
    if (content.length > 1024 * 1024) return answer('E1001', 'content 超过 1 MiB');
    const key = `${acceptNo}/${String(f.materialId)}`;
    this.materials.putChunk(key, index, content);
    this.counters.chunkPuts++;
    const held = this.materials.held(key).length;
    if (held < count) return answer('0', '已接收', held, false);
    const r = await this.materials.complete(key, count, sha);
    if (r === 'mismatch') return answer('E3001', '文件校验不一致，请重新上传', 0, false);
    if (r === 'missing') return answer('0', '已接收', held, false);
    return answer('0', '上传完成', held, true);
  }

  /** Status moves with time since acceptance: 01 → 02 → decision. */
  private advance(b: SiBusiness) {
    const age = Date.now() - b.acceptedAt;
    if (b.status === '01' && age >= this.o.reviewDelayMs) {
      b.status = '02';
      b.statusTime = b.acceptedAt + this.o.reviewDelayMs;
    }
    if (b.status === '02' && age >= this.o.reviewDelayMs + this.o.decisionDelayMs) {
      const d = this.o.decide(b);
      if (d) {
        b.status = d;
        b.statusTime = b.acceptedAt + this.o.reviewDelayMs + this.o.decisionDelayMs;
        b.opinion = d === '03' ? '准予参保' : d === '04' ? '不符合参保条件' : '请补充户籍证明材料';
      }
    }
  }

  private query(res: ServerResponse, acceptNo: string) {
    this.counters.queries++;
    this.queries.set(acceptNo, [...(this.queries.get(acceptNo) ?? []), Date.now()]);
    if (this.mode === 'busy') return this.answer(res, 'queryResult', [['resultCode', 'E9001'], ['resultMsg', '系统繁忙']]);
    const b = this.business.get(acceptNo);
    if (!b) return this.answer(res, 'queryResult', [['resultCode', 'E1001'], ['resultMsg', 'acceptNo 不存在']]);
    this.advance(b);
    const licence = b.status === '03' ? this.o.licence(b) : null;
    this.answer(
      res,
      'queryResult',
      [
        ['resultCode', '0'],
        ['resultMsg', '查询成功'],
        ['status', b.status],
        ['statusTime', bj(b.statusTime)],
        ['opinion', b.opinion || undefined],
      ],
      licence ?? '',
    );
  }
}

