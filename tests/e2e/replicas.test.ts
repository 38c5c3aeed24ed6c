/**
 * `redis.waitReplicas`: on a replicated Redis a change is acknowledged only once a replica holds it
 * (WAIT), so a failover cannot take back a case the platform was told about. A real primary and a
 * real replica; the replica is frozen with SIGSTOP to play one that falls behind.
 */
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../gateway/embedded-redis.js';
import { ReplicaBarrier } from '../../queue/durability.js';
import { Ledger } from '../../queue/ledger.js';
import { sampleCaseFor } from '../fixtures/cases.js';
import { ADMIN_TOKEN, EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { startTestRedis } from '../helpers/redis.js';
import { TaxSimulator } from '../simulators/tax/server.js';

const ITEM = '640100-TAX-0301';
let primary: Awaited<ReturnType<typeof startTestRedis>>;
let replica: EmbeddedRedis;
let replicaDir: string;
let onReplica: Redis;
let replicaLedger: Ledger;
let sim: TaxSimulator;
let platform: PlatformReceiver;
let gw: TestGateway;

beforeAll(async () => {
  primary = await startTestRedis();
  replicaDir = mkdtempSync(join(tmpdir(), 'gw-replica-'));
  replica = await startEmbeddedRedis({ dir: replicaDir, appendfsync: 'no', extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)] });
  onReplica = new Redis(replica.url);
  await waitFor(async () => /master_link_status:up/.test(await onReplica.info('replication')), 10_000, 'the replica in sync');
  replicaLedger = new Ledger(onReplica, 'gw');
  sim = new TaxSimulator({ appSecret: 'sim-tax-secret', reviewDelayMs: 600_000, decisionDelayMs: 600_000 });
  await sim.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  const callbackUrl = await platform.listen();
  gw = await startTestGateway({
    redisUrl: primary.url,
    overrides: {
      redis: { namespace: 'gw', waitReplicas: 1, waitTimeoutMs: 300 },
      platform: { defaultCallbackUrl: callbackUrl, eventRetry: { attempts: 100, baseDelayMs: 100, maxDelayMs: 500 } },
      departments: { tax: { enabled: true, baseUrl: sim.url, retry: { attempts: 6, baseDelayMs: 100, maxDelayMs: 500 } } },
    },
  });
});

afterAll(async () => {
  if (replica?.child.pid) process.kill(replica.child.pid, 'SIGCONT');
  await gw?.close();
  await sim?.close();
  await platform?.close();
  onReplica?.disconnect();
  await replica?.stop();
  rmSync(replicaDir, { recursive: true, force: true });
  await primary?.cleanup();
});

const freeze = () => process.kill(replica.child.pid!, 'SIGSTOP');
const thaw = () => process.kill(replica.child.pid!, 'SIGCONT');
const submit = (caseNo: string) => gw.call('POST', '/v1/cases', { token: gw.platformToken, body: sampleCaseFor(ITEM, caseNo) });

it('a case is acknowledged once the replica holds it; with the replica behind, 503 NOT_REPLICATED, and the repeat once it is back is 200', async () => {
  const first = await submit('REPL-1');
  expect(first.status, JSON.stringify(first.body)).toBe(202);
  expect(await replicaLedger.get('REPL-1')).not.toBeNull(); // there already when the 202 came

  freeze();
  try {
    const behind = await submit('REPL-2');
    expect(behind.status).toBe(503);
    expect(behind.headers.get('retry-after')).toBe('1');
    expect(behind.body.error).toMatchObject({ code: 'SERVICE_UNAVAILABLE', details: [{ code: 'NOT_REPLICATED' }] });
    // Recorded on the primary all the same, and readable: nothing to undo, nothing lost.
    expect((await gw.call('GET', '/v1/cases/REPL-2', { token: gw.platformToken })).status).toBe(200);
    // Reads and pure computations are not held to the replicas.
    const verify = await gw.call('POST', '/v1/licences/verify', { token: gw.platformToken, body: { licence: {} } });
    expect(verify.status).not.toBe(503);
  } finally {
    thaw();
  }
  const repeat = await submit('REPL-2');
  expect(repeat.status, JSON.stringify(repeat.body)).toBe(200);
  expect(await replicaLedger.get('REPL-2')).not.toBeNull();

  // Ops see the rounds, and the ones the replicas did not confirm in time.
  const ops = (await gw.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'ops', role: 'ops' } })).body.token as string;
  const metrics = (await gw.call('GET', '/metrics', { token: ops })).body as string;
  const count = (outcome: string) => Number(new RegExp(`gateway_replica_wait_seconds_count\\{outcome="${outcome}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
  expect(count('confirmed')).toBeGreaterThan(0);
  expect(count('short')).toBeGreaterThan(0);
});

it('concurrent cases share the wait: all acknowledged, all on the replica', async () => {
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => submit(`REPL-MANY-${i}`)));
  expect(answers.map((a) => a.status)).toEqual(Array(40).fill(202));
  for (let i = 0; i < 40; i++) expect(await replicaLedger.get(`REPL-MANY-${i}`)).not.toBeNull();
});

it('one WAIT serves every request waiting when it is sent: twenty at once cost two', async () => {
  const client = new Redis(primary.url);
  try {
    // Counted on this client: the server's own count includes the gateway's waits.
    const calls = vi.spyOn(client, 'call');
    const barrier = new ReplicaBarrier(client, 'gw', { replicas: 1, timeoutMs: 1000 });
    await Promise.all(Array.from({ length: 20 }, () => barrier.wait()));
    // The first goes at once; the other nineteen may have written after it went, so they share the next.
    expect(calls.mock.calls.filter((c) => c[0] === 'WAIT')).toHaveLength(2);
  } finally {
    client.disconnect();
  }
});

it('a write on a connection lost before the WAIT is not confirmed by a WAIT on the next one', async () => {
  const client = new Redis(primary.url);
  try {
    const barrier = new ReplicaBarrier(client, 'gw', { replicas: 1, timeoutMs: 1000 });
    const kept = barrier.epoch;
    await client.set('{gw}:epoch-probe', '1');
    await barrier.wait(kept); // same connection: confirmed
    const before = barrier.epoch;
    await client.set('{gw}:epoch-probe', '2');
    // The connection drops after the write (a primary dying, a failover) and ioredis reconnects: a
    // WAIT on the new connection would answer at once, for none of the earlier writes.
    client.disconnect(true);
    await new Promise((r) => client.once('ready', r));
    await expect(barrier.wait(before)).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE', details: [{ code: 'NOT_REPLICATED' }] });
    await barrier.wait(barrier.epoch); // what comes after is confirmed again
  } finally {
    client.disconnect();
  }
});

it('an event goes to the platform only once the replicas hold it (a failover must not take back a seq the platform has seen)', async () => {
  freeze();
  try {
    expect((await submit('REPL-EV-1')).status).toBe(503); // recorded on the primary, not yet confirmed
    // The worker takes it to tax all the same and records the receipt: event #1, on the primary only.
    await waitFor(async () => !!(await gw.ledger.get('REPL-EV-1'))?.routes[0]?.receiptNo, 15_000, 'REPL-EV-1 submitted to tax');
    await new Promise((r) => setTimeout(r, 1500));
    expect(platform.forCase('REPL-EV-1')).toHaveLength(0);
  } finally {
    thaw();
  }
  const ev = await waitFor(() => platform.forCase('REPL-EV-1')[0], 15_000, 'the event once the replica holds it');
  expect(ev.body).toMatchObject({ seq: 1, status: 'SUBMITTED' });
});

it('a department callback answered 503 while the replica is behind is taken when sent again with the same nonce', async () => {
  await waitFor(async () => !!(await gw.ledger.get('REPL-1'))?.routes[0]?.receiptNo, 15_000, 'REPL-1 submitted to tax');
  const r = (await gw.ledger.get('REPL-1'))!.routes[0]!;
  const body = JSON.stringify({ applyNo: r.receiptNo, bizSerialNo: r.key, status: 'APPROVED', statusTime: '2026-11-24T10:00:00+08:00', opinion: '准予登记' });
  const ts = Date.now();
  const nonce = 'ReplicaNonce00000001';
  const sts = `POST\n/callbacks/tax\n${ts}\n${nonce}\n${createHash('sha256').update(body).digest('hex')}`;
  const headers = { 'content-type': 'application/json', 'x-app-id': 'gateway', 'x-timestamp': String(ts), 'x-nonce': nonce, 'x-signature': createHmac('sha256', 'sim-tax-secret').update(sts).digest('hex') };

  freeze();
  try {
    expect((await gw.call('POST', '/callbacks/tax', { raw: body, headers })).status).toBe(503);
  } finally {
    thaw();
  }
  const again = await gw.call('POST', '/callbacks/tax', { raw: body, headers });
  expect(again.status, JSON.stringify(again.body)).toBe(200);
  expect((await replicaLedger.get('REPL-1'))!.routes[0]!.status).toBe('APPROVED');
});
