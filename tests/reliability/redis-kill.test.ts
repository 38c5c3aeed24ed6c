/**
 * Reliability: Redis is SIGKILLed in the middle of intake and restarted from its AOF (appendfsync
 * always). Every case that got a 202 is still there and is delivered, exactly once; while Redis is
 * away the API answers 503 (the platform retries), never another 5xx, and no process dies.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEmbeddedRedis, freePort, type EmbeddedRedis } from '../../gateway/embedded-redis.js';
import { ADMIN_TOKEN } from '../helpers/gateway.js';
import { waitFor } from '../helpers/platform.js';
import { spawnGateway, type GatewayProcess } from '../helpers/process.js';
import { mixedCase, startStack, type Stack } from '../helpers/stack.js';
import { recordReliability } from '../../bench/report.js';

const N = Number(process.env.RELIABILITY_REDIS_CASES ?? 1500);
let stack: Stack;
let restarted: EmbeddedRedis | null = null;
const procs: GatewayProcess[] = [];

beforeAll(async () => {
  stack = await startStack({ latencyMs: 10 });
});
afterAll(async () => {
  if (process.env.RELIABILITY_DUMP) (await import('node:fs')).writeFileSync(process.env.RELIABILITY_DUMP, procs.map((p) => p.output()).join('\n----\n'));
  for (const p of procs) p.child.kill('SIGKILL');
  await restarted?.stop();
  await stack?.close();
});

it('Redis SIGKILLed mid-intake and restarted: every acknowledged case is kept and delivered once', async () => {
  const port = await freePort();
  const api = spawnGateway('api', stack.env({ GATEWAY_SERVER_PORT: String(port) }));
  procs.push(api, spawnGateway('worker', stack.env()), spawnGateway('worker', stack.env()));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${base}/health/ready`).catch(() => null))?.ok, 30_000, 'api ready');
  stack.inv.setWebhookUrl(`${base}/callbacks/inv`);
  stack.tax.setWebhookUrl(`${base}/callbacks/tax`);
  const token = ((await (await fetch(`${base}/admin/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'p', role: 'platform' }) })).json()) as { token: string }).token;

  const cases = Array.from({ length: N }, (_, i) => mixedCase('REL-REDIS', i));
  const acknowledged = new Set<string>();
  const refusals = new Map<number, number>();
  let networkErrors = 0;
  let next = 0;
  let killedAt = -1;
  let downMs = 0;
  const killAt = Math.floor(N / 3);

  const outage = async () => {
    const t0 = Date.now();
    stack.redis.kill();
    await new Promise((r) => stack.redis.child.once('exit', r));
    await new Promise((r) => setTimeout(r, 1500));
    restarted = await startEmbeddedRedis({ dir: stack.redis.dir, port: stack.redis.port });
    downMs = Date.now() - t0;
  };
  let outageDone: Promise<void> | null = null;

  // 16 platform clients; each retries its case until acknowledged, as the platform does on a 503.
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (;;) {
        const i = next++;
        if (i >= N) return;
        if (i === killAt) {
          killedAt = acknowledged.size;
          outageDone = outage();
        }
        const c = cases[i]!;
        for (let attempt = 0; ; attempt++) {
          const r = await fetch(`${base}/v1/cases`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(c.body) }).catch(() => null);
          if (!r) networkErrors++;
          else if (r.status === 202 || r.status === 200) {
            acknowledged.add(c.caseNo);
            break;
          } else {
            refusals.set(r.status, (refusals.get(r.status) ?? 0) + 1);
            const body = (await r.json()) as { code?: string };
            expect(r.status, JSON.stringify(body)).toBe(503);
          }
          expect(attempt).toBeLessThan(200);
          await new Promise((res) => setTimeout(res, 100));
        }
      }
    }),
  );
  await outageDone;
  expect(killedAt).toBeGreaterThan(0);
  expect(acknowledged.size).toBe(N);
  expect(refusals.get(503) ?? 0).toBeGreaterThan(0); // the outage was seen by clients

  const expected = { inv: 0, si: 0, tax: 0, ps: 0 };
  for (const c of cases) for (const d of c.departments) expected[d]++;
  await waitFor(
    () => (Object.keys(expected) as Array<keyof typeof expected>).every((d) => stack.accepted()[d].size >= expected[d]),
    180_000,
    `every route accepted (${JSON.stringify(Object.fromEntries(Object.entries(stack.accepted()).map(([d, m]) => [d, m.size])))} of ${JSON.stringify(expected)})`,
  );
  let unfinished: unknown[] = [];
  await waitFor(
    async () => {
      unfinished = [];
      for (const c of cases) {
        const r = await fetch(`${base}/v1/cases/${c.caseNo}`, { headers: { authorization: `Bearer ${token}` } });
        const doc = (await r.json()) as { status: string; routes?: Array<{ department: string; status: string; attempts: number; lastError: unknown }> };
        if (r.status !== 200 || doc.status !== 'DONE') unfinished.push({ caseNo: c.caseNo, http: r.status, status: doc.status, routes: doc.routes });
      }
      return unfinished.length === 0;
    },
    Number(process.env.RELIABILITY_WAIT_MS ?? 180_000),
    'every acknowledged case DONE',
  ).catch((e: Error) => {
    throw new Error(`${e.message}: ${unfinished.length} not DONE, e.g. ${JSON.stringify(unfinished.slice(0, 5))}`);
  });
  for (const d of Object.keys(expected) as Array<keyof typeof expected>) {
    expect(stack.accepted()[d].size, d).toBe(expected[d]);
    expect([...stack.accepted()[d].values()].every((n) => n === 1), `${d}: a key accepted twice`).toBe(true);
  }
  for (const p of procs) expect(p.child.exitCode, p.output().slice(-2000)).toBeNull();
  recordReliability('redisKill', {
    cases: N,
    acknowledgedBeforeKill: killedAt,
    redisDownMs: downMs,
    answered503WhileDown: refusals.get(503) ?? 0,
    other5xx: [...refusals.entries()].filter(([s]) => s >= 500 && s !== 503).reduce((a, [, n]) => a + n, 0),
    connectionErrors: networkErrors,
    acknowledgedAndDelivered: acknowledged.size,
    lost: 0,
    acceptedMoreThanOnce: 0,
  });
}, 600_000);
