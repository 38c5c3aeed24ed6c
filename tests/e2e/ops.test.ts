/**
 * Ops: every protected route refuses a missing token (401) and a wrong role (403); the queues API
 * (counts, circuit, jobs by state, re-drive, pause and resume); the per-department circuit breaker
 * against a department taken down for a while, without failing its cases or slowing another.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { TaxSimulator } from '../simulators/tax/server.js';
import { ADMIN_TOKEN, EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { invCase, sampleCaseFor } from '../fixtures/cases.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let inv: InvSimulator;
let tax: TaxSimulator;
let gw: TestGateway;
let opsToken: string;
let platform: PlatformReceiver;
let platformUrl: string;
let deptAdminToken: string;

beforeAll(async () => {
  redis = await startTestRedis();
  inv = new InvSimulator({ reviewDelayMs: 100, decisionDelayMs: 100 });
  await inv.listen();
  tax = new TaxSimulator({ reviewDelayMs: 100, decisionDelayMs: 100 });
  await tax.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  platformUrl = await platform.listen();
  gw = await startTestGateway({
    redisUrl: redis.url,
    overrides: {
      platform: { eventRetry: { attempts: 2, baseDelayMs: 100, maxDelayMs: 200 } },
      departments: {
        inv: { enabled: true, baseUrl: inv.url, timeoutMs: 500, retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 200 }, circuit: { failureThreshold: 2, openMs: 300, maxOpenMs: 1000 } },
        tax: { enabled: true, baseUrl: tax.url },
      },
    },
  });
  inv.setWebhookUrl(`${gw.url}/callbacks/inv`);
  tax.setWebhookUrl(`${gw.url}/callbacks/tax`);
  opsToken = (await gw.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'ops', role: 'ops' } })).body.token;
  deptAdminToken = (await gw.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'inv-admin', role: 'dept-admin:inv' } })).body.token;
});

afterAll(async () => {
  await gw?.close();
  await inv?.close();
  await tax?.close();
  await platform?.close();
  await redis?.cleanup();
});

describe('every protected route', () => {
  it('answers 401 without a token and 403 to a role outside it', async () => {
    const open = new Set(['/health/live', '/health/ready', '/callbacks/:dept', '/ops/login']);
    const routes = gw.app!.gatewayRoutes.filter((r) => !open.has(r.url));
    expect(routes.length).toBeGreaterThan(20);
    const fill = (url: string) => url.replace(':caseNo', 'CASE-1').replace(':itemCode', '640100-INV-0201').replace(':id', 'x').replace(':n', '1').replace(':name', 'dept-inv');
    for (const r of routes) {
      const path = fill(r.url);
      const body = r.method === 'GET' || r.method === 'DELETE' ? {} : { raw: '{}', headers: { 'content-type': 'application/json' } };
      const none = await gw.call(r.method, path, body);
      expect(none.status, `${r.method} ${r.url} without a token`).toBe(401);
      const wrongRole = r.url.startsWith('/v1/') ? opsToken : gw.platformToken;
      const wrong = await gw.call(r.method, path, { token: wrongRole, ...body });
      expect(wrong.status, `${r.method} ${r.url} with the wrong role`).toBe(403);
    }
    // A department admin is not ops.
    expect((await gw.call('GET', '/ops/v1/queues', { token: deptAdminToken })).status).toBe(403);
  });
});

describe('ops API', () => {
  it('lists every queue with counts, oldest waiting age, throughput, pause and circuit state', async () => {
    const r = await gw.call('GET', '/ops/v1/queues', { token: opsToken });
    expect(r.status).toBe(200);
    expect(r.body.items.map((q: { name: string }) => q.name).sort()).toEqual(['dept-inv', 'dept-tax', 'notify']);
    expect(r.body.items.find((q: { name: string }) => q.name === 'dept-inv')).toMatchObject({ department: 'inv', paused: false, counts: { waiting: expect.any(Number), failed: expect.any(Number) }, circuit: { state: 'closed' } });
    expect((await gw.call('GET', '/ops/v1/queues/dept-nope/jobs', { token: opsToken })).status).toBe(404);
    expect((await gw.call('GET', '/ops/v1/queues/dept-inv/jobs?state=bogus', { token: opsToken })).status).toBe(400);
  });

  it('pause stops delivery to a department without losing anything; resume delivers', async () => {
    expect((await gw.call('POST', '/ops/v1/queues/dept-tax/pause', { token: opsToken, raw: '{}', headers: { 'content-type': 'application/json' } })).body).toMatchObject({ paused: true });
    const r = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: sampleCaseFor('640100-TAX-0301', 'OPS-PAUSE-1') });
    expect(r.status).toBe(202);
    await new Promise((res) => setTimeout(res, 1000));
    expect((await gw.ledger.get('OPS-PAUSE-1'))!.routes[0]!.status).toBe('QUEUED');
    const q = await gw.call('GET', '/ops/v1/queues', { token: opsToken });
    expect(q.body.items.find((x: { name: string }) => x.name === 'dept-tax')).toMatchObject({ paused: true, counts: { waiting: 1 } });
    await gw.call('POST', '/ops/v1/queues/dept-tax/resume', { token: opsToken, raw: '{}', headers: { 'content-type': 'application/json' } });
    await waitFor(async () => (await gw.ledger.get('OPS-PAUSE-1'))!.routes[0]!.status === 'APPROVED', 10_000, 'delivered after resume');
  });

  it('failed jobs are listed with their case and error, and re-driven', async () => {
    // Events to a platform that refuses them run out of attempts (2 here) and fail.
    platform.failWith = 503;
    try {
      expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: { ...sampleCaseFor('640100-TAX-0301', 'OPS-FAIL-1'), callbackUrl: platformUrl } })).status).toBe(202);
      const failed = await waitFor(async () => {
        const j = await gw.call('GET', '/ops/v1/queues/notify/jobs?state=failed', { token: opsToken });
        return j.body.items.find((x: { caseNo: string }) => x.caseNo === 'OPS-FAIL-1');
      }, 20_000, 'a failed job');
      expect(failed).toMatchObject({ name: 'notify', attemptsMade: 2, lastError: expect.stringContaining('503') });
      platform.failWith = null;
      const rd = await gw.call('POST', '/ops/v1/queues/notify/retry', { token: opsToken, body: { jobIds: [failed.id] } });
      expect(rd.body).toMatchObject({ retried: 1 });
      await waitFor(() => platform.forCase('OPS-FAIL-1').length > 0, 15_000, 're-driven events delivered');
      expect((await gw.call('POST', '/ops/v1/queues/notify/retry', { token: opsToken, body: { jobIds: ['no-such-job'] } })).status).toBe(404);
      // A malformed body is refused, not read as "re-drive everything".
      for (const bad of [[], { jobIds: 'x' }, { all: true }]) expect((await gw.call('POST', '/ops/v1/queues/notify/retry', { token: opsToken, body: bad })).status).toBe(400);
    } finally {
      platform.failWith = null;
    }
  });
});

describe('dashboard', () => {
  it('a browser logs in with an ops token, gets a session cookie, and sees every department queue', async () => {
    const login = await gw.call('POST', '/ops/login', { body: { token: opsToken } });
    expect(login.status).toBe(200);
    const setCookie = login.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^gw_ops=[A-Za-z0-9_-]{20,}; Path=\/ops; HttpOnly; SameSite=Strict; Max-Age=28800/);
    const cookie = setCookie.split(';')[0]!;
    const page = await gw.call('GET', '/ops/queues', { headers: { cookie, accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(String(page.body)).toContain('Gateway queues');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const api = await gw.call('GET', '/ops/queues/api/queues', { headers: { cookie } });
    expect(api.status).toBe(200);
    expect(api.body.queues.map((q: { name: string }) => q.name).sort()).toEqual(['dept-inv', 'dept-tax', 'notify']);
    expect(api.body.queues[0].counts).toBeDefined();
  });

  it('refuses without a session, with a forged one, and a platform token at login', async () => {
    expect((await gw.call('GET', '/ops/queues', { headers: { accept: 'text/html' } })).status).toBe(401);
    expect((await gw.call('GET', '/ops/queues/api/queues', { headers: { cookie: 'gw_ops=forgedforgedforgedforgedforged' } })).status).toBe(401);
    expect((await gw.call('POST', '/ops/login', { body: { token: gw.platformToken } })).status).toBe(403);
    expect((await gw.call('POST', '/ops/login', { body: { token: 'nope' } })).status).toBe(401);
    expect((await gw.call('GET', '/ops/login')).status).toBe(200);
  });
});

describe('metrics', () => {
  it('intake by outcome, department calls by outcome with latency, queue depths and ages, failures', async () => {
    await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase('MET-1', { itemCode: 'NOPE-1' }) });
    const m = String((await gw.call('GET', '/metrics', { token: opsToken })).body);
    expect(m).toMatch(/gateway_intake_total\{outcome="accepted"\} [1-9]/);
    expect(m).toMatch(/gateway_intake_total\{outcome="MAPPING_NOT_FOUND"\} 1/);
    expect(m).toMatch(/gateway_department_calls_total\{department="tax",operation="submit",outcome="ok"\} [1-9]/);
    expect(m).toMatch(/gateway_department_latency_seconds_bucket\{le="0.5",department="tax",operation="submit"\} [1-9]/);
    expect(m).toMatch(/gateway_queue_jobs\{queue="dept-inv",state="waiting"\} \d+/);
    expect(m).toMatch(/gateway_queue_oldest_waiting_seconds\{queue="notify"\} [\d.]+/);
    expect(m).toMatch(/gateway_jobs_failed_total\{queue="notify"\} [1-9]/);
    expect(m).toMatch(/gateway_job_retries_total\{queue="notify"\} [1-9]/);
  });
});

describe('circuit breaker', () => {
  it('a department down for a while: its circuit opens, no case fails, the other department is not slowed; back up, it closes and delivers once', async () => {
    inv.setMode('down');
    const cases = ['CB-1', 'CB-2', 'CB-3'];
    for (const c of cases) expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase(c) })).status).toBe(202);
    await waitFor(async () => (await gw.call('GET', '/ops/v1/queues', { token: opsToken })).body.items.find((q: { name: string }) => q.name === 'dept-inv').circuit.state !== 'closed', 10_000, 'circuit open');
    // Tax delivers meanwhile.
    expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: sampleCaseFor('640100-TAX-0301', 'CB-TAX-1') })).status).toBe(202);
    await waitFor(async () => (await gw.ledger.get('CB-TAX-1'))!.routes[0]!.status === 'APPROVED', 10_000, 'tax unaffected');
    // Far longer than 3 attempts with 100–200 ms backoff would last: nothing FAILED.
    await new Promise((res) => setTimeout(res, 5000));
    for (const c of cases) expect((await gw.ledger.get(c))!.routes[0]!.status, c).toBe('QUEUED');
    const metrics = await gw.call('GET', '/metrics', { token: opsToken });
    expect(String(metrics.body)).toMatch(/gateway_circuit_state\{department="inv"\} [12]/);
    inv.setMode('normal');
    for (const c of cases) await waitFor(async () => (await gw.ledger.get(c))!.routes[0]!.status === 'APPROVED', 15_000, `${c} delivered`);
    for (const c of cases) expect(inv.accepted.get((await gw.ledger.get(c))!.routes[0]!.key)).toBe(1);
    expect((await gw.call('GET', '/ops/v1/queues', { token: opsToken })).body.items.find((q: { name: string }) => q.name === 'dept-inv').circuit.state).toBe('closed');
  });
});

describe('the edge', () => {
  it('security headers on every answer', async () => {
    for (const r of [await gw.call('GET', '/health/live'), await gw.call('GET', '/v1/cases', { token: gw.platformToken }), await gw.call('GET', '/nope')]) {
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('x-frame-options')).toBe('DENY');
      expect(r.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('a platform client over its rate gets 429 with Retry-After, another client is not affected', async () => {
    const small = await startTestGateway({ redisUrl: redis.url, ns: 'gwrl', overrides: { role: 'api', server: { port: 0, clientRatePerSecond: 5 } } });
    try {
      const answers = await Promise.all(Array.from({ length: 12 }, () => small.call('GET', '/v1/cases', { token: small.platformToken })));
      const limited = answers.filter((a) => a.status === 429);
      expect(limited.length).toBeGreaterThan(0);
      expect(limited[0]!.body.error.code).toBe('RATE_LIMITED');
      expect(limited[0]!.headers.get('retry-after')).toBe('1');
      const other = (await small.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'p2', role: 'platform' } })).body.token;
      expect((await small.call('GET', '/v1/cases', { token: other })).status).toBe(200);
    } finally {
      await small.close();
    }
  });
});
