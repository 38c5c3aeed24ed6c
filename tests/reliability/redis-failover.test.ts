/**
 * Reliability: a Redis failover. The primary is SIGKILLed while its replica lags behind (its
 * replication link frozen: the bytes stop, the connection stays open), the replica is promoted, a
 * fresh replica joins it, and the gateway's address follows it (a proxy playing the virtual IP
 * that Sentinel or a managed Redis moves). With `redis.waitReplicas: 1` every case the
 * platform was told about (202 or 200) is on the new primary; the cases refused meanwhile (503) are
 * taken when the platform repeats them. The same run with `waitReplicas: 0` loses the cases
 * acknowledged during the lag: the window this setting closes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { recordReliability } from '../../bench/report.js';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../gateway/embedded-redis.js';
import { Ledger } from '../../queue/ledger.js';
import { sampleCaseFor } from '../fixtures/cases.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/platform.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { InvSimulator } from '../simulators/inv/server.js';

const ITEM = '640100-INV-0201';
const CLIENTS = 8;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function redisPair() {
  const dir = mkdtempSync(join(tmpdir(), 'gw-failover-'));
  const primary = await startEmbeddedRedis({ dir: join(dir, 'a') });
  // The replica reaches its primary through a proxy, so its link can lag without anything closing.
  const link = new TcpProxy(primary.port);
  await link.listen();
  const replica = await startEmbeddedRedis({ dir: join(dir, 'b'), extraArgs: ['--replicaof', '127.0.0.1', String(link.port)] });
  const onPrimary = new Redis(primary.url);
  onPrimary.on('error', () => undefined); // it is killed on purpose
  const onReplica = new Redis(replica.url);
  await waitFor(async () => /master_link_status:up/.test(await onReplica.info('replication')), 10_000, 'the replica in sync');
  let fresh: EmbeddedRedis | null = null;
  cleanups.push(async () => {
    onPrimary.disconnect();
    onReplica.disconnect();
    await link.close();
    await Promise.all([primary.stop(), replica.stop(), fresh?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });
  const offset = async (c: Redis) => Number(/master_repl_offset:(\d+)/.exec(await c.info('replication'))?.[1]);
  return {
    primary,
    replica,
    link,
    onReplica,
    /** Until the replica holds everything the primary has. */
    caughtUp: () => waitFor(async () => (await offset(onPrimary)) === (await offset(onReplica)), 10_000, 'the replica caught up'),
    /** After a failover: a new replica for the promoted one. */
    async addReplica() {
      fresh = await startEmbeddedRedis({ dir: join(dir, 'c'), extraArgs: ['--replicaof', '127.0.0.1', String(replica.port)] });
      const c = new Redis(fresh.url);
      await waitFor(async () => /master_link_status:up/.test(await c.info('replication')), 10_000, 'the fresh replica in sync');
      c.disconnect();
    },
  };
}

interface Outcome {
  acknowledged: number;
  acknowledgedDuringLag: number;
  refusedWhileBehind: number;
  lost: number;
  other5xx: number;
}

/** Cases flow from CLIENTS platform clients, each repeating a case until it is acknowledged. */
async function failover(waitReplicas: number, prefix: string): Promise<Outcome> {
  const pair = await redisPair();
  const { primary, replica, onReplica } = pair;
  const proxy = new TcpProxy(primary.port);
  await proxy.listen();
  cleanups.push(() => proxy.close());
  const inv = new InvSimulator({ reviewDelayMs: 600_000 });
  await inv.listen();
  cleanups.push(() => inv.close());
  const gw: TestGateway = await startTestGateway({
    redisUrl: proxy.url,
    overrides: {
      role: 'api',
      server: { port: 0, clientRatePerSecond: 100_000 },
      redis: { namespace: 'gw', waitReplicas, waitTimeoutMs: 200 },
      departments: { inv: { enabled: true, baseUrl: inv.url } },
    },
  });
  cleanups.push(() => gw.close());
  await pair.caughtUp(); // the platform's token and the mappings are on both

  const acknowledged = new Set<string>();
  const duringLag = new Set<string>();
  let refusedWhileBehind = 0;
  let other5xx = 0;
  let phase: 'before' | 'lag' | 'after' = 'before';
  let next = 0;
  let stop = false;

  const client = async () => {
    while (!stop) {
      const caseNo = `${prefix}-${String(next++).padStart(5, '0')}`;
      for (;;) {
        const res = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: sampleCaseFor(ITEM, caseNo) }).catch(() => null);
        if (res && (res.status === 202 || res.status === 200)) {
          acknowledged.add(caseNo);
          if (phase === 'lag') duringLag.add(caseNo);
          break;
        }
        if (res?.status === 503 && res.body?.error?.details?.[0]?.code === 'NOT_REPLICATED') refusedWhileBehind++;
        else if (res && res.status >= 500 && res.status !== 503) other5xx++;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  const clients = Array.from({ length: CLIENTS }, client);

  await waitFor(() => acknowledged.size >= 200, 30_000, 'intake flowing');
  // The replica falls behind: its link carries nothing for a second.
  pair.link.freeze();
  phase = 'lag';
  await new Promise((r) => setTimeout(r, 1000));
  // The primary dies; the lagging replica is promoted, gets a replica of its own, and the address
  // follows it.
  primary.kill();
  await new Promise((r) => primary.child.once('exit', r));
  await onReplica.call('REPLICAOF', 'NO', 'ONE');
  await pair.addReplica();
  phase = 'after';
  proxy.retarget(replica.port);
  const target = acknowledged.size + 200;
  await waitFor(() => acknowledged.size >= target, 60_000, 'intake flowing on the new primary');
  stop = true;
  await Promise.all(clients);

  const ledger = new Ledger(onReplica, 'gw');
  let lost = 0;
  for (const caseNo of acknowledged) if (!(await ledger.get(caseNo))) lost++;
  return { acknowledged: acknowledged.size, acknowledgedDuringLag: duringLag.size, refusedWhileBehind, lost, other5xx };
}

it('with waitReplicas 1, a failover to a lagging replica loses no acknowledged case; with 0 it does', async () => {
  const guarded = await failover(1, 'FO-WAIT');
  expect(guarded.lost).toBe(0);
  expect(guarded.refusedWhileBehind).toBeGreaterThan(0); // the lag was felt, and answered 503
  expect(guarded.other5xx).toBe(0);

  const unguarded = await failover(0, 'FO-NOWAIT');
  // The control: without the wait, the cases acknowledged during the lag are gone after the failover.
  expect(unguarded.acknowledgedDuringLag).toBeGreaterThan(0);
  expect(unguarded.lost).toBeGreaterThan(0);

  recordReliability('redisFailover', {
    waitReplicas1_acknowledged: guarded.acknowledged,
    waitReplicas1_refusedWhileReplicaBehind: guarded.refusedWhileBehind,
    waitReplicas1_lost: guarded.lost,
    waitReplicas0_acknowledged: unguarded.acknowledged,
    waitReplicas0_acknowledgedDuringLag: unguarded.acknowledgedDuringLag,
    waitReplicas0_lost: unguarded.lost,
  });
}, 300_000);
