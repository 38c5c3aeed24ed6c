/**
 * Reliability: worker processes are SIGKILLed at random every few seconds while 2,000 cases flow
 * to all four department simulators. Every case reaches its final status and each simulator saw
 * each idempotency key accepted exactly once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADMIN_TOKEN } from '../helpers/gateway.js';
import { waitFor } from '../helpers/platform.js';
import { spawnGateway, type GatewayProcess } from '../helpers/process.js';
import { mixedCase, startStack, type Stack } from '../helpers/stack.js';
import { freePort } from '../../gateway/embedded-redis.js';
import { recordReliability } from '../../bench/report.js';

const N = Number(process.env.RELIABILITY_CASES ?? 2000);
const KILL_EVERY_MS = 2000;
let stack: Stack;
const procs: GatewayProcess[] = [];

beforeAll(async () => {
  stack = await startStack({ latencyMs: 20 });
});
afterAll(async () => {
  for (const p of procs) p.child.kill('SIGKILL');
  await stack?.close();
});

it(`${N} cases to four departments while workers are SIGKILLed every few seconds`, async () => {
  const port = await freePort();
  const api = spawnGateway('api', stack.env({ GATEWAY_SERVER_PORT: String(port) }));
  procs.push(api);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${base}/health/ready`).catch(() => null))?.ok, 30_000, 'api ready');
  stack.inv.setWebhookUrl(`${base}/callbacks/inv`);
  stack.tax.setWebhookUrl(`${base}/callbacks/tax`);
  const workers: GatewayProcess[] = [];
  const startWorker = () => {
    const w = spawnGateway('worker', stack.env());
    workers.push(w);
    procs.push(w);
  };
  for (let i = 0; i < 3; i++) startWorker();

  const token = ((await (await fetch(`${base}/admin/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'p', role: 'platform' }) })).json()) as { token: string }).token;
  const started = Date.now();
  let kills = 0;
  let stopKilling = false;
  // The killer: every few seconds one random live worker dies without warning; a new one starts.
  const killer = (async () => {
    while (!stopKilling) {
      await new Promise((r) => setTimeout(r, KILL_EVERY_MS * (0.5 + Math.random())));
      if (stopKilling) break;
      const live = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
      const victim = live[Math.floor(Math.random() * live.length)];
      if (!victim) continue;
      victim.child.kill('SIGKILL');
      await victim.exited;
      kills++;
      startWorker();
    }
  })();

  const cases = Array.from({ length: N }, (_, i) => mixedCase('REL-KILL', i));
  for (let i = 0; i < N; i += 25) {
    await Promise.all(
      cases.slice(i, i + 25).map(async (c) => {
        const r = await fetch(`${base}/v1/cases`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(c.body) });
        expect(r.status, await r.text()).toBe(202);
      }),
    );
  }
  const intakeDone = Date.now();

  const expected = { inv: 0, si: 0, tax: 0, ps: 0 };
  for (const c of cases) for (const d of c.departments) expected[d]++;
  const final = new Set(['APPROVED', 'REJECTED', 'FAILED', 'WITHDRAWN', 'SUPPLEMENT_REQUIRED']);
  const done = async () => {
    const acc = stack.accepted();
    if ((Object.keys(expected) as Array<keyof typeof expected>).some((d) => acc[d].size < expected[d])) return false;
    return true;
  };
  await waitFor(done, 240_000, `every route accepted (${JSON.stringify(Object.fromEntries(Object.entries(stack.accepted()).map(([d, m]) => [d, m.size])))} of ${JSON.stringify(expected)})`);
  // Every case's final status, read back through the API as the platform would.
  await waitFor(
    async () => {
      for (let i = 0; i < N; i += 1) {
        const r = await fetch(`${base}/v1/cases/${cases[i]!.caseNo}`, { headers: { authorization: `Bearer ${token}` } });
        const doc = (await r.json()) as { status: string; routes: Array<{ status: string }> };
        if (doc.status !== 'DONE' || !doc.routes.every((x) => final.has(x.status))) return false;
      }
      return true;
    },
    240_000,
    'every case DONE',
  );
  stopKilling = true;
  await killer;
  const finished = Date.now();

  const acc = stack.accepted();
  for (const d of Object.keys(expected) as Array<keyof typeof expected>) {
    expect(acc[d].size, d).toBe(expected[d]);
    const twice = [...acc[d].entries()].filter(([, n]) => n !== 1);
    expect(twice, `${d} keys accepted more than once`).toEqual([]);
  }
  expect(kills).toBeGreaterThanOrEqual(2);
  recordReliability('workerKills', {
    cases: N,
    routes: Object.values(expected).reduce((a, b) => a + b, 0),
    workersKilled: kills,
    intakeSeconds: (intakeDone - started) / 1000,
    allFinalSeconds: (finished - started) / 1000,
    acceptedMoreThanOnce: 0,
  });
}, 600_000);
