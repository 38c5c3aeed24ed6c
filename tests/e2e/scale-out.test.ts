/**
 * Scale-out: two API processes and two worker processes against one Redis deliver 1,000 cases,
 * none lost, none sent twice, every platform event in order.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { ADMIN_TOKEN, EVENT_SECRET } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { spawnGateway, type GatewayProcess } from '../helpers/process.js';
import { freePort } from '../../gateway/embedded-redis.js';
import { invCase } from '../fixtures/cases.js';

const N = 1000;
let redis: Awaited<ReturnType<typeof startTestRedis>>;
let sim: InvSimulator;
let platform: PlatformReceiver;
const procs: GatewayProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  sim = new InvSimulator({ reviewDelayMs: 50, decisionDelayMs: 50, ratePerSecond: 100_000 });
  await sim.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  await platform.listen();
});
afterAll(async () => {
  for (const p of procs) p.child.kill('SIGKILL');
  await sim?.close();
  await platform?.close();
  await redis?.cleanup();
});

it('two API and two worker processes: 1,000 cases, none lost, none sent twice', async () => {
  const ports = [await freePort(), await freePort()];
  const common = {
    REDIS_URL: redis.url,
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
  for (const b of bases) await waitFor(async () => (await fetch(`${b}/health/ready`).catch(() => null))?.ok, 30_000, `${b} ready`);
  sim.setWebhookUrl(`${bases[0]}/callbacks/inv`);
  const token = ((await (await fetch(`${bases[0]}/admin/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'p', role: 'platform' }) })).json()) as { token: string }).token;

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
}, 300_000);
