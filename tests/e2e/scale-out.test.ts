/**
 * Scale-out: two API processes and two worker processes deliver 1,000 cases, none lost, none sent
 * twice, every platform event in order: against one Redis, and against a three-node Redis Cluster
 * the test starts on loopback.
 */
import { afterAll, afterEach, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { ADMIN_TOKEN, EVENT_SECRET } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { startTestRedisCluster } from '../helpers/redis-cluster.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { spawnGateway, type GatewayProcess } from '../helpers/process.js';
import { freePort } from '../../gateway/embedded-redis.js';
import { invCase } from '../fixtures/cases.js';

const N = 1000;
const procs: GatewayProcess[] = [];
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => {
  for (const p of procs) p.child.kill('SIGKILL');
});

async function deliverThousand(redisEnv: Record<string, string>) {
  const sim = new InvSimulator({ reviewDelayMs: 50, decisionDelayMs: 50, ratePerSecond: 100_000 });
  await sim.listen();
  cleanups.push(() => sim.close());
  const platform = new PlatformReceiver(EVENT_SECRET);
  await platform.listen();
  cleanups.push(() => platform.close());

  const ports = [await freePort(), await freePort()];
  const common = {
    ...redisEnv,
    GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    GATEWAY_PLATFORM_EVENT_SECRET: EVENT_SECRET,
    GATEWAY_PLATFORM_DEFAULT_CALLBACK_URL: `http://127.0.0.1:${platform.port}/gateway-events`,
    GATEWAY_LOG_LEVEL: 'warn',
    GATEWAY_DEPARTMENTS_INV_ENABLED: 'true',
    GATEWAY_DEPARTMENTS_INV_BASE_URL: sim.url,
    GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'sim-client-secret',
    GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'sim-webhook-secret',
    GATEWAY_DEPARTMENTS_INV_CONCURRENCY: '16',
    GATEWAY_DEPARTMENTS_INV_RATE_LIMIT_MAX: '2000',
    GATEWAY_SERVER_CLIENT_RATE_PER_SECOND: '5000',
  };
  for (const port of ports) procs.push(spawnGateway('api', { ...common, GATEWAY_SERVER_PORT: String(port) }));
  procs.push(spawnGateway('worker', common), spawnGateway('worker', common));
  const bases = ports.map((p) => `http://127.0.0.1:${p}`);
  for (const b of bases) await waitFor(async () => (await fetch(`${b}/health/ready`).catch(() => null))?.ok, 30_000, `${b} ready (${procs.map((p) => p.output()).join('\n').slice(-2000)})`);
  sim.setWebhookUrl(`${bases[0]}/callbacks/inv`);
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  const token = ((await (await fetch(`${bases[0]}/admin/v1/tokens`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'p', role: 'platform' }) })).json()) as { token: string }).token;

  const caseNo = (i: number) => `SCALE-${String(i).padStart(5, '0')}`;
  // Half through each API, 20 at a time; every case is sent twice (a platform retry) to prove idempotency.
  for (let i = 0; i < N; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, N - i) }, async (_, k) => {
        const c = invCase(caseNo(i + k));
        for (const b of [bases[(i + k) % 2]!, bases[(i + k + 1) % 2]!]) {
          const r = await fetch(`${b}/v1/cases`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(c) });
          expect([200, 202]).toContain(r.status);
        }
      }),
    );
  }
  await waitFor(() => sim.accepted.size === N && [...sim.apps.values()].every((a) => a.status === 'approved'), 120_000, 'all accepted and approved');
  expect([...sim.accepted.values()].every((n) => n === 1)).toBe(true);
  await waitFor(() => new Set(platform.events.filter((e) => e.body.status === 'APPROVED').map((e) => e.body.caseNo)).size === N, 120_000, 'every APPROVED event');
  for (let i = 0; i < N; i += 97) {
    const seqs = [...new Set(platform.forCase(caseNo(i)).map((e) => e.body.seq))];
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, k) => k + 1));
  }
  // Either API reads every case back, with both routes' history, from the shared ledger.
  const view = await fetch(`${bases[1]}/v1/cases/${caseNo(N - 1)}`, { headers: { authorization: `Bearer ${token}` } });
  expect(view.status).toBe(200);
  const doc = (await view.json()) as { status: string; routes: Array<{ department: string; status: string }> };
  expect(doc.status).toBe('DONE');
  expect(doc.routes.map((r) => [r.department, r.status])).toEqual([['inv', 'APPROVED']]);
  return { bases, token, sim };
}

it('two API and two worker processes on one Redis: 1,000 cases, none lost, none sent twice', async () => {
  const redis = await startTestRedis();
  cleanups.push(() => redis.cleanup());
  await deliverThousand({ REDIS_URL: redis.url });
}, 300_000);

it('the same on a three-node Redis Cluster; the ops view works across its nodes', async () => {
  const cluster = await startTestRedisCluster(3);
  cleanups.push(() => cluster.cleanup());
  // With this namespace the ledger ({province}), the inv queue and the notify queue hash to three
  // different nodes, so every step crosses nodes (MOVED redirects, scripts on each node).
  const { bases } = await deliverThousand({ REDIS_CLUSTER_NODES: cluster.seeds, GATEWAY_REDIS_NAMESPACE: 'province' });

  const keysPerNode = await Promise.all(
    cluster.nodes.map(async (n) => {
      const { Redis } = await import('ioredis');
      const c = new Redis(n.url);
      try {
        return (await c.call('DBSIZE')) as number;
      } finally {
        c.disconnect();
      }
    }),
  );
  expect(keysPerNode.reduce((a, b) => a + b, 0)).toBeGreaterThan(N);
  expect(keysPerNode.every((k) => k > 0)).toBe(true);

  const ops = await fetch(`${bases[0]}/admin/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ops', role: 'ops' }) });
  const opsToken = ((await ops.json()) as { token: string }).token;
  const queues = await fetch(`${bases[1]}/ops/v1/queues`, { headers: { authorization: `Bearer ${opsToken}` } });
  expect(queues.status).toBe(200);
  const body = (await queues.json()) as { items: Array<{ name: string; counts: Record<string, number>; paused: boolean }> };
  const inv = body.items.find((q) => q.name === 'dept-inv')!;
  expect(inv.counts.completed).toBeGreaterThanOrEqual(N);
  expect(inv.counts.failed ?? 0).toBe(0);
  const pause = await fetch(`${bases[1]}/ops/v1/queues/${inv.name}/pause`, { method: 'POST', headers: { authorization: `Bearer ${opsToken}` } });
  expect(pause.status).toBe(200);
  const after = (await (await fetch(`${bases[0]}/ops/v1/queues`, { headers: { authorization: `Bearer ${opsToken}` } })).json()) as typeof body;
  expect(after.items.find((q) => q.name === 'dept-inv')!.paused).toBe(true);
  const metrics = await fetch(`${bases[0]}/metrics`, { headers: { authorization: `Bearer ${opsToken}` } });
  expect(metrics.status).toBe(200);
  expect(await metrics.text()).toMatch(/gateway_intake_total/);

  // redis.waitReplicas on a Cluster: the WAIT goes to the shard of the `{province}` slot, where the
  // ledger's writes went (these masters have no replicas, so it confirms none).
  const { Redis, Cluster } = await import('ioredis');
  const direct = cluster.nodes.map((n) => new Redis(n.url));
  const client = new Cluster(cluster.seeds.split(',').map((s) => ({ host: s.split(':')[0]!, port: Number(s.split(':')[1]) })));
  try {
    const waits = () => Promise.all(direct.map(async (c) => Number(/cmdstat_wait:calls=(\d+)/.exec(await c.info('commandstats'))?.[1] ?? 0)));
    const holdsLedger = await Promise.all(direct.map(async (c) => ((await c.keys('{province}:case:*')) as string[]).length > 0));
    const before = await waits();
    const { ReplicaBarrier } = await import('../../queue/durability.js');
    await expect(new ReplicaBarrier(client, 'province', { replicas: 1, timeoutMs: 50 }).wait()).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE', details: [{ code: 'NOT_REPLICATED' }] });
    const after = await waits();
    expect(after.map((n, i) => n - before[i]!)).toEqual(holdsLedger.map((h) => (h ? 1 : 0)));
  } finally {
    direct.forEach((c) => c.disconnect());
    client.disconnect();
  }
}, 300_000);
