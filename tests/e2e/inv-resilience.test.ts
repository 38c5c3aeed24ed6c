/**
 * The department and the platform misbehave; nothing is lost or sent twice. Real Redis, the real
 * inv simulator over HTTP, the gateway in this process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { invCase } from '../fixtures/cases.js';
import { signatureHeader } from '../../model/signature.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let sim: InvSimulator;
let gw: TestGateway;
let platform: PlatformReceiver;
let callbackUrl: string;

beforeAll(async () => {
  redis = await startTestRedis();
  sim = new InvSimulator({ reviewDelayMs: 100, decisionDelayMs: 100 });
  await sim.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  callbackUrl = await platform.listen();
  gw = await startTestGateway({
    redisUrl: redis.url,
    overrides: {
      platform: { defaultCallbackUrl: callbackUrl, eventRetry: { attempts: 50, baseDelayMs: 100, maxDelayMs: 400 } },
      departments: { inv: { enabled: true, baseUrl: sim.url, timeoutMs: 1000, retry: { attempts: 4, baseDelayMs: 100, maxDelayMs: 400 } } },
    },
  });
  sim.setWebhookUrl(`${gw.url}/callbacks/inv`);
});

afterAll(async () => {
  await gw?.close();
  await sim?.close();
  await platform?.close();
  await redis?.cleanup();
});

async function submitCase(caseNo: string, over = {}) {
  const r = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase(caseNo, over) });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
}

async function route(caseNo: string) {
  return (await gw.ledger.get(caseNo))!.routes[0]!;
}

async function untilRoute(caseNo: string, status: string, ms = 15_000) {
  return waitFor(async () => {
    const r = await route(caseNo);
    return r.status === status ? r : undefined;
  }, ms, `${caseNo} ${status}`);
}

function acceptedOnce(caseNo: string) {
  const key = gw.ledger.get(caseNo).then((d) => d!.routes[0]!.key);
  return key.then((k) => sim.accepted.get(k));
}

describe('the department misbehaves', () => {
  it('down for a while: retried with backoff, then delivered once', async () => {
    sim.setMode('down');
    await submitCase('RES-DOWN-1');
    await submitCase('RES-DOWN-2');
    await waitFor(async () => (await route('RES-DOWN-1')).lastError?.code === 'DEPT_UNREACHABLE', 10_000, 'first failed attempt recorded');
    const during = await route('RES-DOWN-1');
    expect(during.status).toBe('QUEUED');
    sim.setMode('normal');
    for (const c of ['RES-DOWN-1', 'RES-DOWN-2']) {
      await untilRoute(c, 'APPROVED');
      expect(await acceptedOnce(c)).toBe(1);
    }
    // The error is cleared once the department accepted.
    expect((await route('RES-DOWN-1')).lastError).toBeNull();
  });

  it('5xx for a while: the department\'s words are on the route while it waits', async () => {
    sim.setMode('5xx');
    await submitCase('RES-5XX-1');
    const waiting = await waitFor(async () => {
      const r = await route('RES-5XX-1');
      return r.lastError ? r : undefined;
    }, 10_000, 'error recorded');
    expect(waiting).toMatchObject({ status: 'QUEUED', lastError: { code: 'DEPT_UNAVAILABLE', message: '系统维护中', departmentCode: 'UNAVAILABLE' } });
    sim.setMode('normal');
    await untilRoute('RES-5XX-1', 'APPROVED');
    expect(await acceptedOnce('RES-5XX-1')).toBe(1);
  });

  it('every retry spent: FAILED as DELIVERY_ABANDONED, and the platform is told', async () => {
    sim.setMode('5xx');
    await submitCase('RES-GIVEUP-1');
    const r = await untilRoute('RES-GIVEUP-1', 'FAILED', 20_000);
    sim.setMode('normal');
    expect(r.attempts).toBe(4);
    expect(r.lastError).toMatchObject({ code: 'DELIVERY_ABANDONED' });
    expect(r.lastError!.message).toContain('系统维护中');
    await waitFor(() => platform.forCase('RES-GIVEUP-1').some((e) => e.body.status === 'FAILED'), 10_000, 'FAILED event');
  });

  it('429 with Retry-After waits without spending attempts', async () => {
    sim.setMode('429');
    const before = sim.counters.rateLimited;
    await submitCase('RES-429-1');
    // More 429s than the route has attempts (4): none of them may count.
    await waitFor(() => sim.counters.rateLimited - before >= 5, 15_000, 'five 429 answers');
    expect((await route('RES-429-1')).status).toBe('QUEUED');
    sim.setMode('normal');
    await untilRoute('RES-429-1', 'APPROVED');
    const job = await gw.queues.dept('inv').getJob('submit.RES-429-1.inv');
    expect(job?.attemptsMade ?? 0).toBeLessThanOrEqual(1);
    expect(await acceptedOnce('RES-429-1')).toBe(1);
  });

  it('a permanent refusal fails the route at once with the department\'s words', async () => {
    sim.o.lockedProjects.add('2020-640100-47-01-000001');
    const c = invCase('RES-LOCKED-1');
    c.project!.code = '2020-640100-47-01-000001';
    await submitCase('RES-LOCKED-1', { project: c.project });
    const r = await untilRoute('RES-LOCKED-1', 'FAILED');
    expect(r.attempts).toBe(1);
    expect(r.lastError).toMatchObject({ code: 'DEPT_REFUSED', departmentCode: 'PROJECT_STATE_INVALID' });
  });
});

describe('the outbox: a dispatcher fails between claiming routes and queueing them', () => {
  it('the route is queued when its lease ends, and delivered once', async () => {
    const real = gw.queues.addSubmits.bind(gw.queues);
    let failed = 0;
    gw.queues.addSubmits = async (d, caseNos) => {
      if (caseNos.includes('RES-RECON-1') && failed++ === 0) throw new Error('simulated Redis error while queueing');
      return real(d, caseNos);
    };
    try {
      await submitCase('RES-RECON-1');
      await untilRoute('RES-RECON-1', 'APPROVED');
    } finally {
      gw.queues.addSubmits = real;
    }
    expect(failed).toBeGreaterThanOrEqual(2); // the failed pass, then the one after the lease
    expect(await acceptedOnce('RES-RECON-1')).toBe(1);
    expect(gw.logs.text).toContain('outbox pass failed');
  });
});

describe('callbacks from the department', () => {
  async function signedPost(body: object, secret = 'sim-webhook-secret', at = Date.now()) {
    const raw = JSON.stringify(body);
    return gw.call('POST', '/callbacks/inv', { raw, headers: { 'content-type': 'application/json', 'x-inv-signature': signatureHeader(raw, secret, at) } });
  }

  it('duplicates and older events are ignored; forged and stale ones refused with 401', async () => {
    // A department that never decides by itself: this test sends the decisions.
    const decide = sim.o.decide;
    sim.o.decide = () => null;
    try {
      await submitCase('RES-CB-1');
      const r = await untilRoute('RES-CB-1', 'IN_REVIEW');
      const base = { event: 'application.status_changed', application_id: r.receiptNo, request_id: r.key };
      const t0 = Date.now();
      const approved = { ...base, status: 'approved', occurred_at: new Date(t0 + 60_000).toISOString(), opinion: '同意' };
      expect((await signedPost(approved)).status).toBe(200);
      expect((await signedPost(approved)).status).toBe(200); // duplicate: accepted, ignored
      expect((await signedPost({ ...base, status: 'reviewing', occurred_at: new Date(t0 + 30_000).toISOString() })).status).toBe(200); // older
      expect((await signedPost({ ...base, status: 'rejected', occurred_at: new Date(t0 + 90_000).toISOString() }, 'wrong-secret')).status).toBe(401);
      expect((await signedPost({ ...base, status: 'rejected', occurred_at: new Date(t0 + 90_000).toISOString() }, 'sim-webhook-secret', Date.now() - 301_000)).status).toBe(401);
      const bad = await gw.call('POST', '/callbacks/inv', { raw: '{"event":', headers: { 'content-type': 'application/json' } });
      expect(bad.status).toBe(401);

      const final = await route('RES-CB-1');
      expect(final).toMatchObject({ status: 'APPROVED', opinion: '同意' });
      await waitFor(() => platform.forCase('RES-CB-1').some((e) => e.body.status === 'APPROVED'), 10_000, 'APPROVED event');
      await new Promise((res) => setTimeout(res, 500));
      const statuses = platform.forCase('RES-CB-1').map((e) => e.body.status);
      expect(statuses.filter((s) => s === 'APPROVED')).toHaveLength(1);
      expect(statuses).not.toContain('REJECTED');
      expect(statuses[statuses.length - 1]).toBe('APPROVED');
    } finally {
      sim.o.decide = decide;
    }
  });

  it('a callback for an application the gateway does not know is answered 404, so the department keeps it and retries', async () => {
    const r = await signedPost({ event: 'application.status_changed', application_id: 'INV-NOT-OURS', status: 'approved', occurred_at: new Date().toISOString() });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('CASE_NOT_FOUND');
    expect(gw.logs.text).toContain('callback for a route this gateway does not know');
  });
});

describe('the platform misbehaves', () => {
  it('events are retried until the platform answers 2xx, and arrive in seq order', async () => {
    platform.failWith = 503;
    await submitCase('RES-PLAT-1');
    await untilRoute('RES-PLAT-1', 'APPROVED');
    await new Promise((res) => setTimeout(res, 800));
    expect(platform.forCase('RES-PLAT-1')).toEqual([]);
    platform.failWith = null;
    const events = await waitFor(() => {
      const e = platform.forCase('RES-PLAT-1');
      return e.some((x) => x.body.status === 'APPROVED') ? e : undefined;
    }, 15_000, 'events after recovery');
    const seqs = events.map((e) => e.body.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect([...new Set(seqs)]).toEqual(Array.from({ length: new Set(seqs).size }, (_, i) => i + 1));
    expect(events.every((e) => e.signatureOk)).toBe(true);
  });
});

describe('our credentials are refused (invalid_client)', () => {
  let wrongSim: InvSimulator;
  let gw2: TestGateway;
  beforeAll(async () => {
    // The department was configured with another secret than ours.
    wrongSim = new InvSimulator({ clientSecret: 'the-department-expects-another-secret' });
    await wrongSim.listen();
    gw2 = await startTestGateway({
      redisUrl: redis.url,
      ns: 'gwauth',
      overrides: { departments: { inv: { enabled: true, baseUrl: wrongSim.url, authPauseMs: 1000, retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 400 } } } },
    });
  });
  afterAll(async () => {
    await gw2?.close();
    await wrongSim?.close();
  });

  it('pauses delivery, shows the fault on the route and in the error log, and fails no case', async () => {
    const r = await gw2.call('POST', '/v1/cases', { token: gw2.platformToken, body: invCase('RES-AUTH-1') });
    expect(r.status).toBe(202);
    await waitFor(async () => (await gw2.ledger.get('RES-AUTH-1'))!.routes[0]!.lastError?.code === 'DEPT_AUTH_REFUSED', 10_000, 'auth fault recorded');
    // Long enough for more than `attempts` tries had they been spent.
    await new Promise((res) => setTimeout(res, 3500));
    const route = (await gw2.ledger.get('RES-AUTH-1'))!.routes[0]!;
    expect(route).toMatchObject({ status: 'QUEUED', lastError: { code: 'DEPT_AUTH_REFUSED', departmentCode: 'invalid_client' } });
    expect(wrongSim.counters.submits).toBe(0);
    // Paused between tries, not hammering the token endpoint.
    expect(wrongSim.counters.tokenRequests).toBeLessThanOrEqual(6);
    const errors = gw2.logs.parsed().filter((l) => l.level === 50 && String(l.msg).includes('refused our credentials'));
    expect(errors.length).toBeGreaterThan(0);
  });
});

describe('a department whose webhooks never arrive', () => {
  let silentSim: InvSimulator;
  let gw3: TestGateway;
  beforeAll(async () => {
    // No webhook URL: the department decides but never tells us; only GET reconciliation can learn it.
    silentSim = new InvSimulator({ reviewDelayMs: 50, decisionDelayMs: 50, tokenTtlSeconds: 3600 });
    await silentSim.listen();
    gw3 = await startTestGateway({
      redisUrl: redis.url,
      ns: 'gwrec',
      overrides: { departments: { inv: { enabled: true, baseUrl: silentSim.url, reconcileAfterSeconds: 1 } } },
    });
  });
  afterAll(async () => {
    await gw3?.close();
    await silentSim?.close();
  });

  it('routes silent longer than configured are reconciled by GET and reach their final status', async () => {
    const r = await gw3.call('POST', '/v1/cases', { token: gw3.platformToken, body: invCase('RES-SILENT-1') });
    expect(r.status).toBe(202);
    const done = await waitFor(async () => {
      const d = await gw3.ledger.get('RES-SILENT-1');
      return d?.status === 'DONE' ? d : undefined;
    }, 15_000, 'DONE by reconciliation');
    expect(done.routes[0]).toMatchObject({ status: 'APPROVED', opinion: '同意' });
    expect(silentSim.counters.gets).toBeGreaterThan(0);
    // Once final, the route is no longer asked about.
    const gets = silentSim.counters.gets;
    await new Promise((res) => setTimeout(res, 2500));
    expect(silentSim.counters.gets).toBe(gets);
  });

  it('a token revoked by the department is replaced and the call repeated once', async () => {
    silentSim.revokeTokens();
    const before = silentSim.counters.tokenRequests;
    const r = await gw3.call('POST', '/v1/cases', { token: gw3.platformToken, body: invCase('RES-REVOKED-1') });
    expect(r.status).toBe(202);
    const done = await waitFor(async () => {
      const d = await gw3.ledger.get('RES-REVOKED-1');
      return d?.routes[0]?.status === 'SUBMITTED' || d?.status === 'DONE' ? d : undefined;
    }, 15_000, 'submitted with a fresh token');
    expect(done.routes[0]!.attempts).toBe(1);
    expect(silentSim.counters.tokenRequests).toBe(before + 1);
  });
});
