/**
 * The per-case lock that keeps events in order (queue/notify.ts) is short and renewed while its
 * sender lives: a send that outlasts it keeps it, a sender that loses it breaks off its send, and a
 * dead sender holds the case's events up for NOTIFY_LOCK_TTL_MS at most.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NOTIFY_LOCK_TTL_MS } from '../../queue/notify.js';
import { invCase } from '../fixtures/cases.js';
import { EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { startTestRedis } from '../helpers/redis.js';
import { InvSimulator } from '../simulators/inv/server.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let inv: InvSimulator;
let platform: PlatformReceiver;
let gw: TestGateway;

beforeAll(async () => {
  redis = await startTestRedis();
  inv = new InvSimulator({ reviewDelayMs: 600_000 });
  await inv.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  const callbackUrl = await platform.listen();
  gw = await startTestGateway({
    redisUrl: redis.url,
    overrides: {
      platform: { defaultCallbackUrl: callbackUrl, eventTimeoutMs: 30_000, eventRetry: { attempts: 100, baseDelayMs: 100, maxDelayMs: 300 } },
      departments: { inv: { enabled: true, baseUrl: inv.url } },
    },
  });
});

afterAll(async () => {
  await gw?.close();
  await inv?.close();
  await platform?.close();
  await redis?.cleanup();
});

const lockKey = (caseNo: string) => `{gw}:lock:notify:${caseNo}`;
const submit = async (caseNo: string) => expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase(caseNo) })).status).toBe(202);

it('a send that outlasts the lock keeps it (renewed, never longer than the TTL) and is delivered once', async () => {
  platform.holdMs = NOTIFY_LOCK_TTL_MS + 2000;
  await submit('LOCK-SLOW-1');
  await waitFor(() => platform.held.includes('LOCK-SLOW-1'), 15_000, 'the event on its way');
  const ttls: number[] = [];
  while (platform.held.includes('LOCK-SLOW-1')) {
    ttls.push(await gw.redis.pttl(lockKey('LOCK-SLOW-1')));
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(ttls.length).toBeGreaterThan(20);
  expect(Math.min(...ttls.slice(0, -2))).toBeGreaterThan(0); // held throughout, past its first TTL
  expect(Math.max(...ttls)).toBeLessThanOrEqual(NOTIFY_LOCK_TTL_MS);
  await waitFor(() => platform.forCase('LOCK-SLOW-1').length === 1, 5000, 'the event answered');
  await new Promise((r) => setTimeout(r, 500));
  expect(platform.forCase('LOCK-SLOW-1')).toHaveLength(1);
  expect(platform.abandoned).not.toContain('LOCK-SLOW-1');
}, 30_000);

it('a sender that loses the lock to another breaks off its send, and the event goes later, in order', async () => {
  platform.holdMs = 20_000;
  await submit('LOCK-LOST-1');
  await waitFor(() => platform.held.includes('LOCK-LOST-1'), 15_000, 'the event on its way');
  // Another sender's lock, as if this one's had lapsed while its process stalled.
  await gw.redis.set(lockKey('LOCK-LOST-1'), 'another-sender', 'PX', 2000);
  await waitFor(() => platform.abandoned.includes('LOCK-LOST-1'), NOTIFY_LOCK_TTL_MS, 'the send broken off');
  platform.holdMs = 0;
  const ev = await waitFor(() => platform.forCase('LOCK-LOST-1')[0], 15_000, 'the event delivered after all');
  expect(ev.body.seq).toBe(1);
}, 40_000);

it('a sender that died holding the lock holds the case up for the TTL, no longer', async () => {
  platform.holdMs = 0;
  // What a SIGKILLed sender leaves: its lock, with the TTL every sender sets (first test).
  await gw.redis.set(lockKey('LOCK-DEAD-1'), 'dead-sender', 'PX', NOTIFY_LOCK_TTL_MS);
  const t0 = Date.now();
  await submit('LOCK-DEAD-1');
  await waitFor(() => platform.forCase('LOCK-DEAD-1')[0], 15_000, 'the event delivered');
  const waited = Date.now() - t0;
  expect(waited).toBeGreaterThanOrEqual(NOTIFY_LOCK_TTL_MS - 200); // it did wait for the lock
  expect(waited).toBeLessThan(NOTIFY_LOCK_TTL_MS + 3000);
}, 30_000);
