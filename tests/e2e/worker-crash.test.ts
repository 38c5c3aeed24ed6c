/**
 * A worker process killed with SIGKILL in the middle of deliveries loses nothing, and the department
 * sees every request_id accepted exactly once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { ADMIN_TOKEN, EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { spawnGateway, type GatewayProcess } from '../helpers/process.js';
import { invCase, SAMPLE_ID } from '../fixtures/cases.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let sim: InvSimulator;
let api: TestGateway;
let platform: PlatformReceiver;
let callbackUrl: string;
const workers: GatewayProcess[] = [];

const N = 40;

function workerEnv(): Record<string, string> {
  return {
    REDIS_URL: redis.url,
    GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    GATEWAY_PLATFORM_EVENT_SECRET: EVENT_SECRET,
    GATEWAY_PLATFORM_DEFAULT_CALLBACK_URL: callbackUrl,
    GATEWAY_DEPARTMENTS_INV_ENABLED: 'true',
    GATEWAY_DEPARTMENTS_INV_BASE_URL: sim.url,
    GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'sim-client-secret',
    GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'sim-webhook-secret',
    GATEWAY_DEPARTMENTS_INV_CONCURRENCY: '8',
    GATEWAY_DEPARTMENTS_INV_RETRY_BASE_DELAY_MS: '100',
    GATEWAY_WORKER_LOCK_DURATION_MS: '2000',
    GATEWAY_WORKER_STALLED_INTERVAL_MS: '1000',
    GATEWAY_RECONCILER_INTERVAL_MS: '500',
    GATEWAY_RECONCILER_ENQUEUE_GRACE_MS: '1000',
  };
}

beforeAll(async () => {
  redis = await startTestRedis();
  // Slow answers keep submissions in flight when the worker dies.
  sim = new InvSimulator({ latencyMs: 250, reviewDelayMs: 100, decisionDelayMs: 100, ratePerSecond: 1000 });
  await sim.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  callbackUrl = await platform.listen();
  api = await startTestGateway({
    redisUrl: redis.url,
    overrides: { role: 'api', platform: { defaultCallbackUrl: callbackUrl }, departments: { inv: { enabled: true, baseUrl: sim.url } } },
  });
  sim.setWebhookUrl(`${api.url}/callbacks/inv`);
});

afterAll(async () => {
  for (const w of workers) w.child.kill('SIGKILL');
  await api?.close();
  await sim?.close();
  await platform?.close();
  await redis?.cleanup();
});

it('loses nothing and sends nothing twice when a worker is SIGKILLed mid-run', async () => {
  const first = spawnGateway('worker', workerEnv());
  workers.push(first);
  for (let i = 0; i < N; i++) {
    const r = await api.call('POST', '/v1/cases', { token: api.platformToken, body: invCase(`CRASH-${String(i).padStart(4, '0')}`) });
    expect(r.status).toBe(202);
  }
  // Kill while submissions are on the wire: some accepted by the department, not yet recorded by us.
  await waitFor(() => sim.counters.submits >= 10, 30_000, 'first submissions');
  first.child.kill('SIGKILL');
  await first.exited;
  const acceptedBeforeKill = sim.accepted.size;
  expect(acceptedBeforeKill).toBeLessThan(N);

  const second = spawnGateway('worker', workerEnv());
  workers.push(second);
  const docs = await waitFor(async () => {
    const all = await Promise.all(Array.from({ length: N }, (_, i) => api.ledger.get(`CRASH-${String(i).padStart(4, '0')}`)));
    return all.every((d) => d?.status === 'DONE') ? all : undefined;
  }, 25_000, 'every case DONE').catch(async (e) => {
    const diag = await writeDiagnosis([first, second]);
    throw new Error(`${(e as Error).message}; state written to ${diag}`);
  });

  expect(docs.every((d) => d!.routes[0]!.status === 'APPROVED')).toBe(true);
  expect(sim.accepted.size).toBe(N);
  expect([...sim.accepted.values()].every((n) => n === 1)).toBe(true);
  // Every case's events reached the platform, in seq order, none missing.
  await waitFor(() => Array.from({ length: N }, (_, i) => `CRASH-${String(i).padStart(4, '0')}`).every((c) => platform.forCase(c).some((e) => e.body.status === 'APPROVED')), 30_000, 'all APPROVED events');
  for (let i = 0; i < N; i++) {
    const seqs = [...new Set(platform.forCase(`CRASH-${String(i).padStart(4, '0')}`).map((e) => e.body.seq))];
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, k) => k + 1));
  }
  expect(second.output() + first.output()).not.toContain(SAMPLE_ID);
});

/** Where every unfinished case and its job stood, for whoever has to read a failure. */
async function writeDiagnosis(procs: GatewayProcess[]): Promise<string> {
  const { writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const r = api.redis;
  const q = api.queues.dept('inv');
  const lines: string[] = [];
  for (let i = 0; i < N; i++) {
    const d = await api.ledger.get(`CRASH-${String(i).padStart(4, '0')}`);
    if (d?.status === 'DONE') continue;
    const jobId = `submit.${d?.caseNo}.inv`;
    const job = await q.getJob(jobId);
    const lockTtl = await r.pttl(`{gw-dept-inv}:dept-inv:${jobId}:lock`);
    lines.push(JSON.stringify({ caseNo: d?.caseNo, status: d?.status, route: d?.routes[0], job: job ? { state: await job.getState(), ...job.toJSON() } : null, lockTtl }));
  }
  lines.push(JSON.stringify(await q.getJobCounts()));
  lines.push(`stalled=${JSON.stringify(await r.smembers('{gw-dept-inv}:dept-inv:stalled'))} stalled-check ttl=${await r.pttl('{gw-dept-inv}:dept-inv:stalled-check')}`);
  procs.forEach((p, i) => lines.push(`--- worker ${i + 1}`, p.output()));
  lines.push(`--- simulator ${JSON.stringify(sim.counters)}`);
  const file = `${tmpdir()}/gw-worker-crash-diag.txt`;
  writeFileSync(file, lines.join('\n'));
  return file;
}
