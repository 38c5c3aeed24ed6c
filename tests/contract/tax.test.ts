/**
 * Contract of the tax connector against dept-tax.md: the signed request, byte for byte, and every
 * row of the answer table; the webhook signature both ways. The signature is recomputed here from
 * the spec's formula with node:crypto, independently of connectors/tax/signing.ts.
 */
import { createHash, createHmac } from 'node:crypto';
import nock from 'nock';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TaxConnector } from '../../connectors/tax/index.js';
import { stringToSign, sign } from '../../connectors/tax/signing.js';

const BASE = 'http://tax.contract.test';
const SECRET = 'contract-tax-secret';
const KEY = 'TAX0123456789abcdef0123456789ab';
const PAYLOAD = { nsrsbh: '91350100M000100Y43', nsrmc: '银川某某新能源有限公司', fddbrxm: '李四', fddbrsfzjlx: '201', fddbrsfzjhm: '440524188001010014', scjydz: '银川市金凤区某某路1号', lxdh: '0951-0000000', kyrq: '2026-12-01' };
const PATH = '/api/v2/tax-registrations';

const connector = (now: () => number = Date.now, base = BASE) =>
  new TaxConnector({ baseUrl: base, appId: 'gw-app', appSecret: SECRET, timeoutMs: 2000, maxAnswerBytes: 1 << 20, callbackToleranceSeconds: 300 }, pino({ level: 'silent' }), now);
const submit = (c = connector()) => c.submit({ key: KEY, businessType: 'SWDJ01', payload: PAYLOAD });

beforeAll(() => nock.disableNetConnect());
afterAll(() => nock.enableNetConnect());
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});

describe('request signing', () => {
  it('matches a worked example of the spec formula', () => {
    // Worked by hand from dept-tax.md: POST, path, timestamp, nonce, sha256("") of an empty body.
    const sts = ['GET', '/api/v2/tax-registrations/TX1?x=1', '1795500000000', 'abcdefghijklmnop', createHash('sha256').update('').digest('hex')].join('\n');
    expect(stringToSign('GET', '/api/v2/tax-registrations/TX1?x=1', '1795500000000', 'abcdefghijklmnop', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')).toBe(sts);
    expect(sign('k', sts)).toBe(createHmac('sha256', 'k').update(sts).digest('hex'));
  });

  it('signs every submission: headers, string to sign, body hash, fresh nonce', async () => {
    const seen: { headers: Record<string, string>; body: string }[] = [];
    nock(BASE)
      .post(PATH)
      .times(2)
      .reply(function (_uri, body) {
        seen.push({ headers: this.req.headers as Record<string, string>, body: typeof body === 'string' ? body : JSON.stringify(body) });
        return [200, { code: '0000', message: 'ok', data: { applyNo: 'TX1' } }];
      });
    const now = 1_795_500_000_000;
    const c = connector(() => now);
    await submit(c);
    await submit(c);
    for (const { headers: h, body } of seen) {
      expect(h['x-app-id']).toBe('gw-app');
      expect(h['x-timestamp']).toBe(String(now));
      expect(h['x-nonce']).toMatch(/^[A-Za-z0-9]{16,64}$/);
      expect(h['content-type']).toMatch(/application\/json/);
      const sts = `POST\n${PATH}\n${now}\n${h['x-nonce']}\n${createHash('sha256').update(body).digest('hex')}`;
      expect(h['x-signature']).toBe(createHmac('sha256', SECRET).update(sts).digest('hex'));
      expect(JSON.parse(body)).toEqual({ bizSerialNo: KEY, bizType: 'SWDJ01', ...PAYLOAD });
    }
    expect(seen[0]!.headers['x-nonce']).not.toBe(seen[1]!.headers['x-nonce']);
  });

  it('signs the full path when the base URL has a path prefix', async () => {
    let h: Record<string, string> = {};
    nock(BASE)
      .post(`/gateway-zone${PATH}`)
      .reply(function () {
        h = this.req.headers as Record<string, string>;
        return [200, { code: '0000', data: { applyNo: 'TX2' } }];
      });
    await submit(connector(Date.now, `${BASE}/gateway-zone`));
    const body = JSON.stringify({ bizSerialNo: KEY, bizType: 'SWDJ01', ...PAYLOAD });
    const sts = `POST\n/gateway-zone${PATH}\n${h['x-timestamp']}\n${h['x-nonce']}\n${createHash('sha256').update(body).digest('hex')}`;
    expect(h['x-signature']).toBe(createHmac('sha256', SECRET).update(sts).digest('hex'));
  });
});

describe('answer table of POST /api/v2/tax-registrations', () => {
  it('200 / 0000: accepted with data.applyNo', async () => {
    nock(BASE).post(PATH).reply(200, { code: '0000', message: '受理成功', data: { applyNo: 'TX20261124000001' } });
    expect(await submit()).toEqual({ kind: 'ok', value: { receiptNo: 'TX20261124000001' } });
  });
  it('200 / 2001: already accepted, the first applyNo', async () => {
    nock(BASE).post(PATH).reply(200, { code: '2001', message: '业务流水号已受理', data: { applyNo: 'TX0' } });
    expect(await submit()).toEqual({ kind: 'duplicate', value: { receiptNo: 'TX0' } });
  });
  it('400 / 3001: validation failed, permanent, the field named as the department wrote it', async () => {
    nock(BASE).post(PATH).reply(400, { code: '3001', message: 'scjydz 必填' });
    expect(await submit()).toEqual({ kind: 'permanent', fault: { code: 'DEPT_REJECTED_DATA', departmentCode: '3001', message: 'scjydz 必填' } });
  });
  it('400 / 3002: already registered, permanent', async () => {
    nock(BASE).post(PATH).reply(400, { code: '3002', message: '纳税人已登记' });
    expect(await submit()).toEqual({ kind: 'permanent', fault: { code: 'DEPT_REFUSED', departmentCode: '3002', message: '纳税人已登记' } });
  });
  it('429 / 4290: waits Retry-After seconds', async () => {
    nock(BASE).post(PATH).reply(429, { code: '4290', message: '请求过于频繁' }, { 'Retry-After': '12' });
    expect(await submit()).toMatchObject({ kind: 'retry-after', delayMs: 12_000, fault: { departmentCode: '4290' } });
  });
  it('503 / 5000: busy, retried', async () => {
    nock(BASE).post(PATH).reply(503, { code: '5000', message: '系统繁忙' });
    expect(await submit()).toEqual({ kind: 'retry', fault: { code: 'DEPT_UNAVAILABLE', departmentCode: '5000', message: '系统繁忙' } });
  });
  it('401 / 1001 bad signature and 1003 unknown app: our configuration, an auth problem', async () => {
    nock(BASE).post(PATH).reply(401, { code: '1001', message: '签名错误' });
    expect(await submit()).toMatchObject({ kind: 'auth', fault: { code: 'DEPT_AUTH_REFUSED', departmentCode: '1001' } });
    nock(BASE).post(PATH).reply(401, { code: '1003', message: '未知应用' });
    expect(await submit()).toMatchObject({ kind: 'auth', fault: { departmentCode: '1003' } });
  });
  it('401 / 1002 stale timestamp or replayed nonce: retried with a fresh signature', async () => {
    nock(BASE).post(PATH).reply(401, { code: '1002', message: '时间戳过期' });
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_SIGNATURE_STALE', departmentCode: '1002' } });
  });
  it('no answer, or 200 without applyNo: retried (the bizSerialNo makes a repeat safe)', async () => {
    nock(BASE).post(PATH).replyWithError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_UNREACHABLE' } });
    nock(BASE).post(PATH).reply(200, { code: '0000', data: {} });
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
    nock(BASE).post(PATH).reply(200, '<html>proxy</html>');
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
  });
});

describe('GET /api/v2/tax-registrations/{applyNo}', () => {
  it('is signed and reads the webhook shape', async () => {
    let h: Record<string, string> = {};
    nock(BASE)
      .get('/api/v2/tax-registrations/TX1')
      .reply(function () {
        h = this.req.headers as Record<string, string>;
        return [200, { code: '0000', data: { applyNo: 'TX1', bizSerialNo: KEY, status: 'APPROVED', statusTime: '2026-11-24T10:00:00+08:00', opinion: '准予登记' } }];
      });
    expect(await connector().fetchResult('TX1')).toEqual({
      kind: 'ok',
      value: { receiptNo: 'TX1', status: 'APPROVED', departmentStatus: 'APPROVED', occurredAt: Date.parse('2026-11-24T02:00:00Z'), opinion: '准予登记', licence: null, source: 'reconcile' },
    });
    const sts = `GET\n/api/v2/tax-registrations/TX1\n${h['x-timestamp']}\n${h['x-nonce']}\n${createHash('sha256').update('').digest('hex')}`;
    expect(h['x-signature']).toBe(createHmac('sha256', SECRET).update(sts).digest('hex'));
  });
});

describe('webhooks', () => {
  const body = Buffer.from(JSON.stringify({ applyNo: 'TX1', bizSerialNo: KEY, status: 'REVIEWING', statusTime: '2026-11-24T10:00:00+08:00', opinion: '' }));
  const now = 1_795_500_000_000;
  const headers = (over: Record<string, string> = {}, path = '/callbacks/tax', raw = body, at = now) => {
    const nonce = over['x-nonce'] ?? 'N0nceN0nceN0nce123';
    const sts = `POST\n${path}\n${at}\n${nonce}\n${createHash('sha256').update(raw).digest('hex')}`;
    return { 'x-app-id': 'gw-app', 'x-timestamp': String(at), 'x-nonce': nonce, 'x-signature': createHmac('sha256', SECRET).update(sts).digest('hex'), ...over };
  };
  const target = { method: 'POST', pathAndQuery: '/callbacks/tax' };

  it('a good signature gives the event, the 0000 reply and the nonce for the replay store', () => {
    expect(connector().parseCallback(body, headers(), now, target)).toEqual({
      ok: true,
      events: [{ key: KEY, receiptNo: 'TX1', event: expect.objectContaining({ status: 'IN_REVIEW', departmentStatus: 'REVIEWING', source: 'callback' }) }],
      reply: { code: '0000' },
      replay: { id: 'N0nceN0nceN0nce123', ttlSeconds: 600 },
    });
  });

  it('refuses with 401 and the spec code: bad signature, other path, changed body, stale time, unknown app', () => {
    const c = connector();
    expect(c.parseCallback(body, headers({ 'x-signature': 'a'.repeat(64) }), now, target)).toMatchObject({ ok: false, status: 401, reply: { code: '1001' } });
    expect(c.parseCallback(body, headers({}, '/somewhere/else'), now, target)).toMatchObject({ ok: false, status: 401, reply: { code: '1001' } });
    expect(c.parseCallback(Buffer.from(body.toString().replace('REVIEWING', 'APPROVED')), headers(), now, target)).toMatchObject({ ok: false, status: 401, reply: { code: '1001' } });
    expect(c.parseCallback(body, headers({}, '/callbacks/tax', body, now - 301_000), now, target)).toMatchObject({ ok: false, status: 401, reply: { code: '1002' } });
    expect(c.parseCallback(body, headers({ 'x-app-id': 'someone' }), now, target)).toMatchObject({ ok: false, status: 401, reply: { code: '1003' } });
  });

  it('behind a proxy that rewrites the path, the configured callbackPath is what the signature covers', () => {
    const c = new TaxConnector({ baseUrl: BASE, appId: 'gw-app', appSecret: SECRET, timeoutMs: 2000, maxAnswerBytes: 1 << 20, callbackToleranceSeconds: 300, callbackPath: '/gw/callbacks/tax' }, pino({ level: 'silent' }));
    // The tax system called (and signed) /gw/callbacks/tax; the proxy handed the gateway /callbacks/tax.
    expect(c.parseCallback(body, headers({}, '/gw/callbacks/tax'), now, target)).toMatchObject({ ok: true });
    expect(c.parseCallback(body, headers({}, '/callbacks/tax'), now, target)).toMatchObject({ ok: false, status: 401, reply: { code: '1001' } });
  });

  it('a signed body that is not a status event is 400', () => {
    for (const raw of ['x', '{}', JSON.stringify({ applyNo: 'TX1', status: 'DONE', statusTime: '2026-11-24T10:00:00+08:00' }), JSON.stringify({ applyNo: 'TX1', status: 'APPROVED', statusTime: 'yesterday' })]) {
      const b = Buffer.from(raw);
      expect(connector().parseCallback(b, headers({}, '/callbacks/tax', b), now, target), raw).toMatchObject({ ok: false, status: 400 });
    }
  });
});
