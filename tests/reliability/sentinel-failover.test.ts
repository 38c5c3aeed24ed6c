/**
 * Redis under Sentinel (`redis.sentinel.nodes`): the gateway asks the sentinels where the primary
 * is. The primary is SIGKILLed mid-intake; the sentinel promotes the replica, the old primary comes
 * back as its replica, and the gateway, API and workers alike, carries on against the new primary
 * without a restart. With `redis.waitReplicas: 1` no acknowledged case is lost on the way, and every
 * case reaches the department exactly once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../gateway/embedded-redis.js';
import { Ledger } from '../../queue/ledger.js';
import { sampleCaseFor } from '../fixtures/cases.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/platform.js';
import { startTestSentinel, type TestSentinel } from '../helpers/redis-sentinel.js';
import { InvSimulator } from '../simulators/inv/server.js';

const ITEM = '640100-INV-0201';
const NAME = 'gw-primary';
let dir: string;
let first: EmbeddedRedis;
let second: EmbeddedRedis;
let firstAgain: EmbeddedRedis | null = null;
let sentinel: TestSentinel;
let inv: InvSimulator;
let gw: TestGateway;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gw-sentinel-'));
  first = await startEmbeddedRedis({ dir: join(dir, 'a') });
  second = await startEmbeddedRedis({ dir: join(dir, 'b'), extraArgs: ['--replicaof', '127.0.0.1', String(first.port)] });
  const onSecond = new Redis(second.url);
  await waitFor(async () => /master_link_status:up/.test(await onSecond.info('replication')), 10_000, 'the replica in sync');
  onSecond.disconnect();
  sentinel = await startTestSentinel(NAME, first.port);
  await waitFor(async () => ((await sentinel.client.call('SENTINEL', 'REPLICAS', NAME)) as unknown[]).length > 0, 20_000, 'the sentinel knows the replica');
  inv = new InvSimulator({ reviewDelayMs: 600_000 });
  await inv.listen();
  gw = await startTestGateway({
    redisUrl: null,
    overrides: {
      redis: { namespace: 'gw', sentinel: { nodes: [sentinel.node], masterName: NAME }, waitReplicas: 1, waitTimeoutMs: 300 },
      server: { port: 0, clientRatePerSecond: 100_000 },
      departments: { inv: { enabled: true, baseUrl: inv.url, retry: { attempts: 1000, baseDelayMs: 100, maxDelayMs: 500 } } },
    },
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await inv?.close();
  await sentinel?.stop();
  await Promise.all([first?.stop(), second?.stop(), firstAgain?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** Sends a case until it is acknowledged, as the platform does on a 503; says why if it never is. */
async function submitUntilAcknowledged(caseNo: string, withinMs = 90_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  let last = '';
  for (;;) {
    const res = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: sampleCaseFor(ITEM, caseNo) }).catch((e: Error) => (last = e.message, null));
    if (res && (res.status === 202 || res.status === 200)) return;
    expect(res === null || res.status === 503, JSON.stringify(res?.body)).toBe(true);
    if (res) last = JSON.stringify(res.body);
    if (Date.now() > deadline) {
      const replication = await new Redis(second.url).info('replication').catch((e: Error) => e.message);
      throw new Error(`${caseNo} not acknowledged within ${withinMs} ms; last answer ${last}; the sentinel says the primary is on ${await sentinel.primaryPort()}; its replication: ${replication}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('the primary dies mid-intake: the sentinel fails over, the gateway follows without a restart, no acknowledged case is lost and each reaches the department once', async () => {
  expect(gw.redisTarget).toBe(`sentinel ${NAME}@${sentinel.node}`);
  const before = Array.from({ length: 10 }, (_, i) => `SENT-A-${i}`);
  await Promise.all(before.map(submitUntilAcknowledged));

  first.kill();
  const during = Array.from({ length: 20 }, (_, i) => `SENT-B-${i}`);
  const flowing = Promise.all(during.map((c, i) => new Promise((r) => setTimeout(r, i * 100)).then(() => submitUntilAcknowledged(c))));
  await waitFor(async () => (await sentinel.primaryPort()) === second.port, 30_000, 'the sentinel promoting the replica');
  // The old primary comes back; the sentinel makes it the new primary's replica, so writes are
  // confirmed again (waitReplicas: 1).
  firstAgain = await startEmbeddedRedis({ dir: join(dir, 'a'), port: first.port });
  await flowing;

  const all = [...before, ...during];
  const onNewPrimary = new Redis(second.url);
  try {
    const ledger = new Ledger(onNewPrimary, 'gw');
    for (const c of all) expect(await ledger.get(c), c).not.toBeNull();
    await waitFor(async () => (await Promise.all(all.map((c) => ledger.get(c)))).every((d) => d!.routes[0]!.status === 'SUBMITTED'), 60_000, 'every case submitted to inv');
    for (const c of all) {
      const key = (await ledger.get(c))!.routes[0]!.key;
      expect(inv.accepted.get(key), c).toBe(1);
    }
  } finally {
    onNewPrimary.disconnect();
  }
  expect((await fetch(`${gw.url}/health/ready`)).status).toBe(200);
}, 300_000);
