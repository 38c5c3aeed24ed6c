/**
 * SIGTERM: the gateway stops taking work, lets running deliveries finish within its deadline,
 * closes Redis and exits 0; nothing stalls or is lost.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { ADMIN_TOKEN, EVENT_SECRET } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/platform.js';
import { spawnGateway } from '../helpers/process.js';
import { freePort } from '../../gateway/embedded-redis.js';
import { invCase } from '../fixtures/cases.js';
import { Redis } from 'ioredis';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let sim: InvSimulator;

beforeAll(async () => {
  redis = await startTestRedis();
  sim = new InvSimulator({ latencyMs: 1500, reviewDelayMs: 60_000 });
  await sim.listen();
});
afterAll(async () => {
  await sim?.close();
  await redis?.cleanup();
});

it('finishes the deliveries on the wire, refuses new requests, and exits 0 within the deadline', async () => {
  const port = await freePort();
  const gw = spawnGateway('all', {
    REDIS_URL: redis.url,
    GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    GATEWAY_PLATFORM_EVENT_SECRET: EVENT_SECRET,
    GATEWAY_SERVER_PORT: String(port),
    GATEWAY_WORKER_SHUTDOWN_DEADLINE_MS: '8000',
    GATEWAY_DEPARTMENTS_INV_ENABLED: 'true',
    GATEWAY_DEPARTMENTS_INV_BASE_URL: sim.url,
    GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'sim-client-secret',
    GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'sim-webhook-secret',
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${base}/health/ready`).catch(() => null))?.ok, 20_000, 'gateway ready');
  const token = ((await (await fetch(`${base}/admin/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'p', role: 'platform' }) })).json()) as { token: string }).token;
  for (let i = 0; i < 5; i++) {
    const r = await fetch(`${base}/v1/cases`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(invCase(`SHUT-${i}`)) });
    expect(r.status).toBe(202);
  }
  // Submissions are on the wire (the department takes 1.5 s to answer).
  const ledger = new Redis(redis.url);
  try {
    await waitFor(async () => {
      const doc = JSON.parse((await ledger.hget('{gw}:case:SHUT-0', 'doc')) ?? 'null');
      return doc?.routes[0]?.attempts === 1;
    }, 10_000, 'a submission on the wire');
    const started = Date.now();
    gw.child.kill('SIGTERM');
    const code = await gw.exited;
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(8000);
    expect(gw.output()).toContain('shutting down');
    // Every case the department accepted is recorded as such: nothing half-done is left behind.
    for (let i = 0; i < 5; i++) {
      const doc = JSON.parse((await ledger.hget(`{gw}:case:SHUT-${i}`, 'doc'))!);
      const r = doc.routes[0];
      if (sim.accepted.has(r.key)) expect(r.status, `SHUT-${i}`).toBe('SUBMITTED');
      else expect(r.status).toBe('QUEUED');
    }
    expect(await fetch(`${base}/health/live`).then(() => 'answered', () => 'closed')).toBe('closed');
  } finally {
    ledger.disconnect();
  }
});
