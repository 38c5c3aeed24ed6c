/**
 * A result check that failed for good (Redis away longer than its retries, once seen in the
 * reliability suite as si routes left SUBMITTED forever) is re-driven by the reconciler while its
 * route is open, and left alone once the route is final.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Worker } from 'bullmq';
import pino from 'pino';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/platform.js';
import { sampleCaseFor } from '../fixtures/cases.js';
import { Reconciler } from '../../queue/reconciler.js';
import { deptQueueName, queuePrefix } from '../../queue/queues.js';
import { workerConnection } from '../../queue/redis-client.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let gw: TestGateway;

beforeAll(async () => {
  redis = await startTestRedis();
  // API only: no workers of its own, so the test decides what happens to the check job.
  gw = await startTestGateway({ redisUrl: redis.url, overrides: { role: 'api', departments: { si: { enabled: true, retry: { attempts: 1, baseDelayMs: 100, maxDelayMs: 100 } } } } });
});
afterAll(async () => {
  await gw?.close();
  await redis?.cleanup();
});

it('re-drives a failed check of an open route, not of a final one', async () => {
  const caseNo = 'RECON-CHECK-1';
  expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: sampleCaseFor('640100-SI-0101', caseNo) })).status).toBe(202);
  await gw.ledger.mutate(caseNo, (d) => {
    d.routes[0]!.status = 'SUBMITTED';
    d.routes[0]!.receiptNo = 'SI-TEST-1';
    return d;
  });
  const q = gw.queues.dept('si');
  await gw.queues.addCheck(caseNo, 'si', 0);
  const name = deptQueueName('si');
  // A worker that fails every check, as one whose Redis went away would.
  const failing = new Worker(name, async (job) => {
    if (job.name === 'check') throw new Error('Reached the max retries per request limit (which is 1)');
  }, { connection: workerConnection({ kind: 'single', url: redis.url }).connection, prefix: queuePrefix('gw', name) });
  const checkId = `check.${caseNo}.si`;
  await waitFor(async () => (await q.getJob(checkId))?.failedReason, 10_000, 'check failed for good');
  await failing.close();
  expect(await (await q.getJob(checkId))!.getState()).toBe('failed');

  const reconciler = new Reconciler(gw.redis, gw.ledger, gw.queues, pino({ level: 'silent' }), 1000, 0, ['si'], 0);
  expect((await reconciler.runOnce()).checks).toBe(1);
  expect(await (await q.getJob(checkId))!.getState()).toMatch(/waiting|delayed|prioritized/);

  // Failed again, but the route has reached its end meanwhile: nothing to follow, left alone.
  const again = new Worker(name, async (job) => {
    if (job.name === 'check') throw new Error('still failing');
  }, { connection: workerConnection({ kind: 'single', url: redis.url }).connection, prefix: queuePrefix('gw', name) });
  await waitFor(async () => (await (await q.getJob(checkId))?.getState()) === 'failed', 10_000, 'failed again');
  await again.close();
  await gw.ledger.mutate(caseNo, (d) => {
    d.routes[0]!.status = 'APPROVED';
    return d;
  });
  expect((await reconciler.runOnce()).checks).toBe(0);
  expect(await (await q.getJob(checkId))!.getState()).toBe('failed');
});
