/**
 * The submission outbox: intake only records; dispatchers (one per worker process) claim routes
 * under a lease and queue them. Two dispatchers at once queue every route exactly once; a claim
 * hides routes from others until its lease ends, then they can be claimed again.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import pino from 'pino';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { invCase } from '../fixtures/cases.js';
import { OutboxDispatcher, OUTBOX_DEFAULTS } from '../../queue/outbox.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let gw: TestGateway;
const N = 300;

beforeAll(async () => {
  redis = await startTestRedis();
  // API only: no dispatcher of its own, so the test runs them.
  gw = await startTestGateway({ redisUrl: redis.url, overrides: { role: 'api', server: { port: 0, clientRatePerSecond: 100_000 }, departments: { inv: { enabled: true, baseUrl: 'http://127.0.0.1:9' } } } });
});
afterAll(async () => {
  await gw?.close();
  await redis?.cleanup();
});

it('intake records routes in the outbox and queues nothing itself', async () => {
  for (let i = 0; i < N; i += 50)
    await Promise.all(Array.from({ length: 50 }, async (_, k) => expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase(`OUTBOX-${i + k}`) })).status).toBe(202)));
  expect(await gw.redis.zcard('{gw}:pending:submit')).toBe(N);
  expect(await gw.queues.dept('inv').count()).toBe(0);
  // Ops see what waits in the outbox: no worker process runs here, so all of it.
  const ops = (await gw.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'ops', role: 'ops' } })).body.token as string;
  const view = await gw.call('GET', '/ops/v1/queues', { token: ops });
  expect(view.body.outbox).toEqual({ routes: N, oldestWaitingAgeSeconds: expect.any(Number) });
  const metrics = await gw.call('GET', '/metrics', { token: ops });
  expect(String(metrics.body)).toMatch(new RegExp(`^gateway_outbox_routes ${N}$`, 'm'));
});

it('a claim hides its routes from other dispatchers until the lease ends', async () => {
  const first = await gw.ledger.claimPendingSubmits(10, 300);
  expect(first).toHaveLength(10);
  const second = await gw.ledger.claimPendingSubmits(N, 300);
  expect(second).toHaveLength(N - 10);
  expect(second.some((r) => first.some((f) => f.caseNo === r.caseNo))).toBe(false);
  expect(await gw.ledger.claimPendingSubmits(N, 300)).toHaveLength(0);
  await new Promise((r) => setTimeout(r, 350));
  expect(await gw.ledger.claimPendingSubmits(N, 1)).toHaveLength(N); // all back after their lease
  await new Promise((r) => setTimeout(r, 5));
});

it('two dispatchers at once queue every route exactly once and empty the outbox', async () => {
  const log = pino({ level: 'silent' });
  const settings = { ...OUTBOX_DEFAULTS, batch: 25, leaseMs: 60_000 };
  const a = new OutboxDispatcher(gw.ledger, gw.queues, log, settings);
  const b = new OutboxDispatcher(gw.ledger, gw.queues, log, settings);
  const drain = async (d: OutboxDispatcher) => {
    let moved = 0;
    for (let n = await d.drainOnce(); n > 0; n = await d.drainOnce()) moved += n;
    return moved;
  };
  const [ma, mb] = await Promise.all([drain(a), drain(b)]);
  expect(ma + mb).toBe(N);
  expect(ma).toBeGreaterThan(0);
  expect(mb).toBeGreaterThan(0);
  expect(await gw.redis.zcard('{gw}:pending:submit')).toBe(0);
  const q = gw.queues.dept('inv');
  expect(await q.count()).toBe(N);
  const jobs = await q.getJobs(['waiting', 'prioritized'], 0, N);
  expect(new Set(jobs.map((j) => j.id)).size).toBe(N);
  expect(jobs.every((j) => j.id === `submit.${j.data.caseNo}.inv` && j.opts.attempts! > 1)).toBe(true);

  // An identical repeat of a case whose route is queued puts it back in the outbox; queueing it
  // again adds nothing.
  expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase('OUTBOX-7') })).status).toBe(200);
  expect(await drain(a)).toBe(1);
  expect(await q.count()).toBe(N);
});
