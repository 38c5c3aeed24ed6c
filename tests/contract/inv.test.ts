/**
 * Contract of the inv connector against dept-inv.md: the exact requests it sends and how it
 * classifies every row of the answer table. nock stands in for the department here only; the e2e
 * tests run against the real simulator.
 */
import nock from 'nock';
import { pino } from 'pino';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { InvConnector } from '../../connectors/inv/index.js';
import { signatureHeader } from '../../model/signature.js';

const BASE = 'http://inv.contract.test';
const log = pino({ level: 'silent' });
const KEY = 'INV0123456789abcdef0123456789abc';
const PAYLOAD = { project_code: '2019-640100-47-01-012345', project_name: '某某光伏发电项目', total_investment_wan: '12345.6789', construction_unit: { name: '某某公司', uscc: '91350100M000100Y43' } };

function connector(now: () => number = Date.now) {
  return new InvConnector(
    { baseUrl: BASE, clientId: 'gw-client', clientSecret: 'contract-secret', webhookSecret: 'hook-secret', scope: 'approval', timeoutMs: 2000, maxAnswerBytes: 1 << 20, callbackToleranceSeconds: 300 },
    log,
    now,
  );
}

function tokenOk(token = 'tok-1', expiresIn = 7200) {
  return nock(BASE)
    .post('/oauth2/token', (body: Record<string, string>) => body.grant_type === 'client_credentials' && body.client_id === 'gw-client' && body.client_secret === 'contract-secret' && body.scope === 'approval')
    .matchHeader('content-type', /application\/x-www-form-urlencoded/)
    .reply(200, { access_token: token, token_type: 'Bearer', expires_in: expiresIn });
}

const APPS = `/api/v1/projects/${PAYLOAD.project_code}/applications`;

function submit(c = connector()) {
  return c.submit({ key: KEY, businessType: 'INV-HZ-001', payload: PAYLOAD });
}

beforeAll(() => nock.disableNetConnect());
afterAll(() => nock.enableNetConnect());
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending, 'every expected request was made').toEqual([]);
});

describe('POST /api/v1/projects/{project_code}/applications', () => {
  it('201: sends the spec request with Idempotency-Key = request_id and the bearer token', async () => {
    tokenOk();
    let sent: any;
    nock(BASE)
      .post(APPS, (b) => ((sent = b), true))
      .matchHeader('authorization', 'Bearer tok-1')
      .matchHeader('idempotency-key', KEY)
      .matchHeader('content-type', /application\/json/)
      .reply(201, { application_id: 'INV-20261124-000001', status: 'received' });
    expect(await submit()).toEqual({ kind: 'ok', value: { receiptNo: 'INV-20261124-000001' } });
    // project_code goes into the URL, not the body; request_id and matter_code are added.
    expect(sent).toEqual({ request_id: KEY, matter_code: 'INV-HZ-001', project_name: PAYLOAD.project_name, total_investment_wan: '12345.6789', construction_unit: PAYLOAD.construction_unit });
  });

  it('200 with Idempotent-Replay: true is a duplicate of an earlier acceptance', async () => {
    tokenOk();
    nock(BASE).post(APPS).reply(200, { application_id: 'INV-20261124-000001', status: 'received' }, { 'Idempotent-Replay': 'true' });
    expect(await submit()).toEqual({ kind: 'duplicate', value: { receiptNo: 'INV-20261124-000001' } });
  });

  it('400 VALIDATION_FAILED is permanent, in the department\'s words', async () => {
    tokenOk();
    nock(BASE).post(APPS).reply(400, { error_code: 'VALIDATION_FAILED', details: [{ field: 'construction_site', reason: '不能为空' }] });
    expect(await submit()).toEqual({ kind: 'permanent', fault: { code: 'DEPT_REJECTED_DATA', departmentCode: 'VALIDATION_FAILED', message: 'construction_site: 不能为空' } });
  });

  it('404 PROJECT_NOT_FOUND is permanent', async () => {
    tokenOk();
    nock(BASE).post(APPS).reply(404, { error_code: 'PROJECT_NOT_FOUND' });
    expect(await submit()).toMatchObject({ kind: 'permanent', fault: { code: 'DEPT_PROJECT_NOT_FOUND', departmentCode: 'PROJECT_NOT_FOUND' } });
  });

  it('422 PROJECT_STATE_INVALID is permanent with its message', async () => {
    tokenOk();
    nock(BASE).post(APPS).reply(422, { error_code: 'PROJECT_STATE_INVALID', message: '项目已锁定' });
    expect(await submit()).toEqual({ kind: 'permanent', fault: { code: 'DEPT_REFUSED', departmentCode: 'PROJECT_STATE_INVALID', message: '项目已锁定' } });
  });

  it('429 waits as long as Retry-After says (seconds or an HTTP date)', async () => {
    const c = connector();
    tokenOk();
    nock(BASE).post(APPS).reply(429, '', { 'Retry-After': '7' });
    expect(await submit(c)).toMatchObject({ kind: 'retry-after', delayMs: 7000 });
    nock(BASE).post(APPS).reply(429, '', { 'Retry-After': new Date(Date.now() + 30_000).toUTCString() });
    const r = await submit(c);
    expect(r.kind).toBe('retry-after');
    expect(r.kind === 'retry-after' && r.delayMs).toBeGreaterThan(25_000);
  });

  it.each([500, 502, 503, 504])('%i is retried later', async (status) => {
    tokenOk();
    nock(BASE).post(APPS).reply(status, '<html>gateway error</html>');
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_UNAVAILABLE', departmentCode: String(status) } });
  });

  it('a 2xx without application_id is retried (the same key gets the receipt)', async () => {
    tokenOk();
    nock(BASE).post(APPS).reply(201, { status: 'received' });
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
  });

  it('a dropped connection or a timeout is retried', async () => {
    const c = connector();
    tokenOk();
    nock(BASE).post(APPS).replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    expect(await submit(c)).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_UNREACHABLE' } });
    nock(BASE).post(APPS).delay(2500).reply(201, { application_id: 'late' });
    expect(await submit(c)).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_UNREACHABLE' } });
  });

  it('an answer outside the table is permanent, keeping the department\'s words', async () => {
    tokenOk();
    nock(BASE).post(APPS).reply(409, { error_code: 'SOMETHING_NEW', message: '未知错误' });
    expect(await submit()).toEqual({ kind: 'permanent', fault: { code: 'DEPT_UNEXPECTED_ANSWER', departmentCode: 'SOMETHING_NEW', message: '未知错误' } });
  });

  it('a payload without project_code never reaches the department', async () => {
    const r = await connector().submit({ key: KEY, businessType: 'INV-HZ-001', payload: { project_name: 'x' } });
    expect(r).toMatchObject({ kind: 'permanent', fault: { code: 'MAPPING_INCOMPLETE' } });
  });
});

describe('token', () => {
  it('is fetched once and reused while valid, by concurrent calls too', async () => {
    tokenOk();
    nock(BASE).post(APPS).times(3).reply(201, { application_id: 'INV-1' });
    const c = connector();
    const rs = await Promise.all([submit(c), submit(c), submit(c)]);
    expect(rs.every((r) => r.kind === 'ok')).toBe(true);
  });

  it('is fetched again a minute before it expires', async () => {
    let now = 1_000_000;
    const c = connector(() => now);
    tokenOk('tok-1', 120);
    nock(BASE).post(APPS).matchHeader('authorization', 'Bearer tok-1').reply(201, { application_id: 'INV-1' });
    await submit(c);
    now += 61_000;
    tokenOk('tok-2', 120);
    nock(BASE).post(APPS).matchHeader('authorization', 'Bearer tok-2').reply(201, { application_id: 'INV-2' });
    expect(await submit(c)).toEqual({ kind: 'ok', value: { receiptNo: 'INV-2' } });
  });

  it('invalid_token: a new token is fetched and the call repeated once', async () => {
    const c = connector();
    tokenOk('tok-old');
    nock(BASE).post(APPS).matchHeader('authorization', 'Bearer tok-old').reply(401, { error: 'invalid_token' });
    tokenOk('tok-new');
    nock(BASE).post(APPS).matchHeader('authorization', 'Bearer tok-new').matchHeader('idempotency-key', KEY).reply(201, { application_id: 'INV-9' });
    expect(await submit(c)).toEqual({ kind: 'ok', value: { receiptNo: 'INV-9' } });
  });

  it('invalid_token twice in a row: stops after one repeat, as an auth problem', async () => {
    tokenOk('a');
    nock(BASE).post(APPS).reply(401, { error: 'invalid_token' });
    tokenOk('b');
    nock(BASE).post(APPS).reply(401, { error: 'invalid_token' });
    expect(await submit()).toMatchObject({ kind: 'auth', fault: { code: 'DEPT_AUTH_REFUSED', departmentCode: 'invalid_token' } });
  });

  it('invalid_client is an auth problem: no retry storm, no submission', async () => {
    nock(BASE).post('/oauth2/token').reply(401, { error: 'invalid_client' });
    expect(await submit()).toEqual({ kind: 'auth', fault: { code: 'DEPT_AUTH_REFUSED', departmentCode: 'invalid_client', message: 'token refused: invalid_client' } });
  });

  it('token endpoint down or rate limited is retried, not an auth problem', async () => {
    nock(BASE).post('/oauth2/token').reply(503, 'busy');
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_UNAVAILABLE' } });
    nock(BASE).post('/oauth2/token').reply(429, '', { 'Retry-After': '3' });
    expect(await submit()).toMatchObject({ kind: 'retry-after', delayMs: 3000 });
    nock(BASE).post('/oauth2/token').replyWithError(Object.assign(new Error('connect refused'), { code: 'ECONNREFUSED' }));
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_UNREACHABLE' } });
    nock(BASE).post('/oauth2/token').reply(200, { token_type: 'Bearer' });
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
  });
});

describe('GET /api/v1/applications/{id} (reconciliation)', () => {
  it('reads the status into a department event', async () => {
    tokenOk();
    nock(BASE)
      .get('/api/v1/applications/INV-1')
      .matchHeader('authorization', 'Bearer tok-1')
      .reply(200, { application_id: 'INV-1', request_id: KEY, status: 'approved', occurred_at: '2026-11-24T10:00:00+08:00', opinion: '同意' });
    expect(await connector().fetchResult('INV-1')).toEqual({
      kind: 'ok',
      value: { receiptNo: 'INV-1', status: 'APPROVED', departmentStatus: 'approved', occurredAt: Date.parse('2026-11-24T02:00:00Z'), opinion: '同意', licence: null, source: 'reconcile' },
    });
  });

  it('refuses statuses outside the spec, including prototype names', async () => {
    for (const status of ['archived', 'constructor', '__proto__', 'toString']) {
      tokenOk();
      nock(BASE).get('/api/v1/applications/INV-1').reply(200, { application_id: 'INV-1', status, occurred_at: '2026-11-24T10:00:00+08:00' });
      expect(await connector().fetchResult('INV-1'), status).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
    }
  });

  it('429, 5xx and unexpected answers', async () => {
    const c = connector();
    tokenOk();
    nock(BASE).get('/api/v1/applications/INV-1').reply(429, '', { 'Retry-After': '2' });
    expect(await c.fetchResult('INV-1')).toMatchObject({ kind: 'retry-after', delayMs: 2000 });
    nock(BASE).get('/api/v1/applications/INV-1').reply(502, '');
    expect(await c.fetchResult('INV-1')).toMatchObject({ kind: 'retry' });
    nock(BASE).get('/api/v1/applications/INV-1').reply(200, 'not json');
    expect(await c.fetchResult('INV-1')).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
  });
});

describe('webhook (X-Inv-Signature)', () => {
  const body = Buffer.from(JSON.stringify({ event: 'application.status_changed', application_id: 'INV-1', request_id: KEY, status: 'reviewing', occurred_at: '2026-11-24T10:00:00+08:00' }));
  const now = Date.parse('2026-11-24T02:00:10Z');

  it('accepts a fresh, matching signature', () => {
    const r = connector().parseCallback(body, { 'x-inv-signature': signatureHeader(body, 'hook-secret', now - 5000) }, now);
    expect(r).toMatchObject({ ok: true, events: [{ key: KEY, receiptNo: 'INV-1', event: { status: 'IN_REVIEW' } }] });
  });

  it('refuses a wrong secret, a changed body, a stale or missing signature with 401', () => {
    const c = connector();
    const cases: [Buffer, string | undefined][] = [
      [body, signatureHeader(body, 'other-secret', now)],
      [Buffer.from(body.toString().replace('reviewing', 'approved')), signatureHeader(body, 'hook-secret', now)],
      [body, signatureHeader(body, 'hook-secret', now - 301_000)],
      [body, undefined],
      [body, 't=abc,v1=zz'],
    ];
    for (const [raw, header] of cases) expect(c.parseCallback(raw, { 'x-inv-signature': header }, now)).toMatchObject({ ok: false, status: 401 });
  });

  it('refuses a signed body that is not a status event with 400', () => {
    const c = connector();
    for (const raw of ['not json', '[]', JSON.stringify({ event: 'other' }), JSON.stringify({ event: 'application.status_changed', application_id: 'INV-1', status: 'bogus', occurred_at: 'x' })]) {
      const b = Buffer.from(raw);
      expect(c.parseCallback(b, { 'x-inv-signature': signatureHeader(b, 'hook-secret', now) }, now), raw).toMatchObject({ ok: false, status: 400 });
    }
  });
});
