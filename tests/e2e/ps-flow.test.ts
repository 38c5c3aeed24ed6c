/**
 * Public security end to end over real mutual TLS (certificates made by openssl at run time) with
 * real GBK bytes: approved by polling, a 生僻字 refused before sending, an impostor server and a
 * client certificate the department does not know, an outage.
 */
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PsSimulator } from '../simulators/ps/server.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/platform.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { sampleCaseFor } from '../fixtures/cases.js';

const ITEM = '640100-PS-0301';
let redis: Awaited<ReturnType<typeof startTestRedis>>;
let pki: TestPki;
let ps: PsSimulator;
let gw: TestGateway;

const psConfig = (baseUrl: string, files: { ca: string; cert: string; key: string }) => ({
  departments: { ps: { enabled: true, baseUrl, senderCode: 'GATEWAY', caFile: files.ca, certFile: files.cert, keyFile: files.key, pollIntervalSeconds: 1, pollMaxIntervalSeconds: 2, authPauseMs: 1000, retry: { attempts: 6, baseDelayMs: 100, maxDelayMs: 500 } } },
});

beforeAll(async () => {
  redis = await startTestRedis();
  pki = makeTestPki();
  ps = new PsSimulator({ key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, reviewDelayMs: 300, decisionDelayMs: 700, register: new Map([['11010519491231002X', '张三']]) });
  await ps.listen();
  gw = await startTestGateway({ redisUrl: redis.url, overrides: psConfig(ps.url, { ca: pki.caFile, cert: pki.clientCertFile, key: pki.clientKeyFile }) });
});

afterAll(async () => {
  await gw?.close();
  await ps?.close();
  await redis?.cleanup();
  pki?.cleanup();
});

const route = async (g: TestGateway, caseNo: string) => (await g.ledger.get(caseNo))!.routes[0]!;
async function submit(g: TestGateway, caseNo: string, change?: (c: ReturnType<typeof sampleCaseFor>) => void) {
  const c = sampleCaseFor(ITEM, caseNo);
  change?.(c);
  const r = await g.call('POST', '/v1/cases', { token: g.platformToken, body: c });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
}

describe('ps over mutual TLS', () => {
  it('accepted → in review → approved by JG_CX polling; GBK bytes on the wire', async () => {
    await submit(gw, 'PS-E2E-1');
    const d = await waitFor(async () => {
      const x = await gw.ledger.get('PS-E2E-1');
      return x?.status === 'DONE' ? x : undefined;
    }, 20_000, 'DONE');
    expect(d.routes[0]).toMatchObject({ status: 'APPROVED', departmentStatus: '3', opinion: '准予登记' });
    expect(d.routes[0]!.receiptNo).toMatch(/^GA/);
    const biz = ps.business.get(d.routes[0]!.receiptNo!)!;
    expect(biz).toMatchObject({ ywlx: 'HJ0301', seq: d.routes[0]!.key, sqr: { GMSFHM: '11010519491231002X', XM: '张三', XB: '2', MZ: '01' } });
    expect(biz.kzxx).toEqual(expect.arrayContaining([{ DM: 'HLYY', value: '有效期满' }]));
    const submitted = ps.requests.find((r) => iconv.decode(r, 'gbk').includes(`<SEQ>${d.routes[0]!.key}</SEQ>`))!;
    expect(submitted.includes(Buffer.from([0xd5, 0xc5, 0xc8, 0xfd]))).toBe(true); // 张三
    expect(ps.accepted.get(d.routes[0]!.key)).toBe(1);
  });

  it('a name with a character GBK cannot encode fails the route naming the field; nothing is sent', async () => {
    const before = ps.counters.submits;
    await submit(gw, 'PS-RARE-1', (c) => (c.applicant.name = '王𠮷'));
    const r = await waitFor(async () => {
      const x = await route(gw, 'PS-RARE-1');
      return x.status === 'FAILED' ? x : undefined;
    }, 10_000, 'FAILED');
    expect(r.lastError).toMatchObject({ code: 'UNENCODABLE_CHARACTER' });
    expect(r.lastError!.message).toContain('SQR.XM');
    expect(ps.counters.submits).toBe(before);
  });

  it('identity check failed (CODE 20) fails the route in the department\'s words', async () => {
    await submit(gw, 'PS-ID-1', (c) => (c.applicant.name = '李四'));
    const r = await waitFor(async () => {
      const x = await route(gw, 'PS-ID-1');
      return x.status === 'FAILED' ? x : undefined;
    }, 10_000, 'FAILED');
    expect(r.lastError).toMatchObject({ code: 'DEPT_IDENTITY_MISMATCH', departmentCode: '20', message: '公民身份号码与姓名不匹配' });
  });

  it('busy for a while, then back: delivered once', async () => {
    ps.setMode('busy');
    await submit(gw, 'PS-BUSY-1');
    await waitFor(async () => (await route(gw, 'PS-BUSY-1')).lastError?.departmentCode === '90', 10_000, 'busy seen');
    ps.setMode('normal');
    const r = await waitFor(async () => {
      const x = await route(gw, 'PS-BUSY-1');
      return x.status === 'APPROVED' ? x : undefined;
    }, 20_000, 'APPROVED');
    expect(ps.accepted.get(r.key)).toBe(1);
  });
});

describe('trust is the department CA only', () => {
  it('an impostor server (certificate from another CA) is never sent the case; the fault is visible', async () => {
    const impostor = new PsSimulator({ key: pki.rogue.serverKey, cert: pki.rogue.serverCert, ca: pki.ca });
    await impostor.listen();
    const g = await startTestGateway({ redisUrl: redis.url, ns: 'gwpsrogue', overrides: psConfig(impostor.url, { ca: pki.caFile, cert: pki.clientCertFile, key: pki.clientKeyFile }) });
    try {
      await submit(g, 'PS-ROGUE-1');
      const r = await waitFor(async () => {
        const x = await route(g, 'PS-ROGUE-1');
        return x.lastError ? x : undefined;
      }, 10_000, 'TLS fault');
      expect(r).toMatchObject({ status: 'QUEUED', lastError: { code: 'DEPT_TLS_REFUSED' } });
      expect(impostor.requests).toHaveLength(0);
      expect(g.logs.text).toContain('refused our credentials');
    } finally {
      await g.close();
      await impostor.close();
    }
  });

  it('a client certificate the department did not issue is refused by the department; no case fails', async () => {
    const g = await startTestGateway({ redisUrl: redis.url, ns: 'gwpsclient', overrides: psConfig(ps.url, { ca: pki.caFile, cert: pki.rogue.clientCertFile, key: pki.rogue.clientKeyFile }) });
    const before = ps.counters.submits;
    try {
      await submit(g, 'PS-CLIENT-1');
      const r = await waitFor(async () => {
        const x = await route(g, 'PS-CLIENT-1');
        return x.lastError ? x : undefined;
      }, 10_000, 'TLS fault');
      expect(r.status).toBe('QUEUED');
      expect(['DEPT_TLS_REFUSED', 'DEPT_UNREACHABLE']).toContain(r.lastError!.code);
      expect(ps.counters.submits).toBe(before);
      expect(ps.counters.tlsRefused).toBeGreaterThan(0);
    } finally {
      await g.close();
    }
  });
});

describe('mapping preview for ps', () => {
  it('shows the GBK packet decoded, identical to the bytes later sent but for the sending time', async () => {
    const sample = sampleCaseFor(ITEM, 'PS-PREVIEW-1');
    const p = await gw.call('POST', `/admin/v1/mappings/${ITEM}/preview`, { token: (await import('../helpers/gateway.js')).ADMIN_TOKEN, body: sample });
    expect(p.status, JSON.stringify(p.body)).toBe(200);
    const req = p.body.routes[0].request;
    expect(req).toMatchObject({ method: 'POST', url: `${ps.url}/gab/service`, encoding: 'gbk', headers: { 'Content-Type': 'text/xml; charset=GBK' } });
    expect(req.body).toContain('<XM>张三</XM>');
    await submit(gw, 'PS-PREVIEW-1');
    const sent = await waitFor(() => ps.requests.map((r) => iconv.decode(r, 'gbk')).find((t) => t.includes(`<SEQ>${p.body.routes[0].key}</SEQ>`)), 10_000, 'sent');
    const strip = (s: string) => s.replace(/<TIME>.*?<\/TIME>/, '<TIME/>');
    expect(strip(sent)).toBe(strip(req.body));
  });
});
