/**
 * Intake, end-to-end and cost-growth benchmarks, each with its baseline on the same Redis in the
 * same run. The gateway runs built (dist/), as its own processes, as in production; the four
 * department simulators and the load generator run in the bench process.
 *
 * - Intake: POST /v1/cases at 64 connections (autocannon) vs a bare BullMQ Queue.add loop, 64 in flight.
 * - End to end: N cases over the four departments, first POST → every route accepted by its
 *   department, vs a no-op BullMQ worker draining N jobs added 64 in flight.
 * - Cost growth: with 1k, 10k, 100k cases waiting in Redis (a paused department's backlog), intake
 *   and end-to-end rates of the other departments, and Redis memory per waiting case.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startEmbeddedRedis, freePort, type EmbeddedRedis } from '../gateway/embedded-redis.js';
import { workerConnection } from '../queue/redis-client.js';
import { invCase, sampleCaseFor } from '../tests/fixtures/cases.js';
import { mixedCase } from '../tests/helpers/stack.js';
import { InvSimulator } from '../tests/simulators/inv/server.js';
import { SiSimulator } from '../tests/simulators/si/server.js';
import { TaxSimulator } from '../tests/simulators/tax/server.js';
import { PsSimulator } from '../tests/simulators/ps/server.js';
import { makeTestPki, type TestPki } from '../tests/helpers/pki.js';
import { canonicalJson, routeKey } from '../gateway/intake.js';
import { createHash } from 'node:crypto';
import type { DepartmentId } from '../model/case.js';

const ADMIN = 'bench-admin-token-0123456789abcdef0123';
const CONNECTIONS = 64;

interface Sims {
  inv: InvSimulator;
  si: SiSimulator;
  tax: TaxSimulator;
  ps: PsSimulator;
  pki: TestPki;
  accepted(): number;
  close(): Promise<void>;
}

async function startSims(): Promise<Sims> {
  const pki = makeTestPki();
  // Decisions far in the future: the bench measures delivery, not the departments' review.
  const slow = { reviewDelayMs: 3_600_000, decisionDelayMs: 3_600_000 };
  const inv = new InvSimulator({ ...slow, ratePerSecond: 1_000_000 });
  const si = new SiSimulator({ ...slow });
  const tax = new TaxSimulator({ ...slow, ratePerSecond: 1_000_000 });
  const ps = new PsSimulator({ key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, ...slow });
  await Promise.all([inv.listen(), si.listen(), tax.listen(), ps.listen()]);
  return {
    inv,
    si,
    tax,
    ps,
    pki,
    accepted: () => inv.accepted.size + si.accepted.size + tax.accepted.size + ps.accepted.size,
    async close() {
      await Promise.all([inv.close(), si.close(), tax.close(), ps.close()]);
      pki.cleanup();
    },
  };
}

function gatewayEnv(redisUrl: string, sims: Sims, port: number, eventsUrl: string): Record<string, string> {
  const e: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    REDIS_URL: redisUrl,
    GATEWAY_ADMIN_TOKEN: ADMIN,
    GATEWAY_PLATFORM_EVENT_SECRET: 'bench-event-secret-0123456789abcdef',
    GATEWAY_PLATFORM_DEFAULT_CALLBACK_URL: eventsUrl,
    GATEWAY_SERVER_PORT: String(port),
    GATEWAY_SERVER_CLIENT_RATE_PER_SECOND: '1000000',
    GATEWAY_LOG_LEVEL: 'warn',
    GATEWAY_DEPARTMENTS_INV_BASE_URL: sims.inv.url,
    GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'sim-client-secret',
    GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'sim-webhook-secret',
    GATEWAY_DEPARTMENTS_SI_BASE_URL: sims.si.url,
    GATEWAY_DEPARTMENTS_SI_PASSWORD: 'sim-si-password',
    GATEWAY_DEPARTMENTS_TAX_BASE_URL: sims.tax.url,
    GATEWAY_DEPARTMENTS_TAX_APP_SECRET: 'sim-tax-secret',
    GATEWAY_DEPARTMENTS_PS_BASE_URL: sims.ps.url,
    GATEWAY_DEPARTMENTS_PS_CA_FILE: sims.pki.caFile,
    GATEWAY_DEPARTMENTS_PS_CERT_FILE: sims.pki.clientCertFile,
    GATEWAY_DEPARTMENTS_PS_KEY_FILE: sims.pki.clientKeyFile,
  };
  for (const d of ['INV', 'SI', 'TAX', 'PS']) {
    e[`GATEWAY_DEPARTMENTS_${d}_ENABLED`] = 'true';
    e[`GATEWAY_DEPARTMENTS_${d}_CONCURRENCY`] = '32';
    e[`GATEWAY_DEPARTMENTS_${d}_RATE_LIMIT_MAX`] = '100000';
    e[`GATEWAY_DEPARTMENTS_${d}_POLL_INTERVAL_SECONDS`] = '3600';
  }
  return e;
}

interface Stack {
  redis: EmbeddedRedis;
  sims: Sims;
  base: string;
  token: string;
  opsToken: string;
  procs: ChildProcess[];
  close(): Promise<void>;
}

async function startStack(roles: Array<'api' | 'worker'>, o: { replica?: boolean; env?: Record<string, string> } = {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-flow-'));
  // Production settings (AOF, appendfsync always): intake is only as fast as a durable write.
  const redis = await startEmbeddedRedis({ dir: join(dir, 'redis') });
  // A replica of it, when asked for (the redis.waitReplicas figures).
  let replica: EmbeddedRedis | null = null;
  if (o.replica) {
    replica = await startEmbeddedRedis({ dir: join(dir, 'replica'), extraArgs: ['--replicaof', '127.0.0.1', String(redis.port)] });
    const c = new Redis(replica.url);
    for (let i = 0; !/master_link_status:up/.test(await c.info('replication')); i++) {
      if (i > 200) throw new Error('the replica did not sync');
      await new Promise((r) => setTimeout(r, 50));
    }
    c.disconnect();
  }
  const sims = await startSims();
  // The platform takes every event at once: its speed is not under test.
  const platform = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((r) => platform.listen(0, '127.0.0.1', r));
  const eventsUrl = `http://127.0.0.1:${(platform.address() as { port: number }).port}/events`;
  const port = await freePort();
  const procs = roles.map((role) =>
    spawn(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []), 'dist/gateway/main.js', '--role', role], { env: { ...gatewayEnv(redis.url, sims, role === 'api' ? port : 0, eventsUrl), ...o.env }, stdio: ['ignore', 'inherit', 'inherit'] }),
  );
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (await fetch(`${base}/health/ready`).then((r) => r.ok, () => false)) break;
    if (i > 300) throw new Error('gateway did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  sims.inv.setWebhookUrl(`${base}/callbacks/inv`);
  sims.tax.setWebhookUrl(`${base}/callbacks/tax`);
  const mk = async (role: string) =>
    ((await (await fetch(`${base}/admin/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: `bench-${role}`, role }) })).json()) as { token: string }).token;
  const token = await mk('platform');
  const opsToken = await mk('ops');
  return {
    redis,
    sims,
    base,
    token,
    opsToken,
    procs,
    async close() {
      // SIGTERM when profiling, so the profile is written on the way out.
      await Promise.all(procs.map((p) => new Promise((r) => (p.once('exit', r), p.kill(process.env.BENCH_CPU_PROF ? 'SIGTERM' : 'SIGKILL')))));
      platform.closeAllConnections();
      await new Promise((r) => platform.close(r));
      await sims.close();
      await replica?.stop();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a process has used so far, from /proc; NaN where there is no /proc. */
function cpuSeconds(pid: number | undefined): number {
  try {
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Runs `fn` and tells how many CPU microseconds each of `pids` (and this process, as 'self') spent. */
async function cpuOf<T>(pids: Record<string, number | undefined>, fn: () => Promise<T>): Promise<{ result: T; cpuSeconds: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const self = process.cpuUsage();
  const result = await fn();
  const selfUsed = process.cpuUsage(self);
  const cpu: Record<string, number> = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid) - before[k]!]));
  cpu.self = (selfUsed.user + selfUsed.system) / 1e6;
  return { result, cpuSeconds: cpu };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))] ?? NaN;
}

/** Runs `op(i)` for i < total (or until `ms` passes), `inFlight` at a time; returns rate and latencies. */
async function closedLoop(op: (i: number) => Promise<void>, o: { total?: number; ms?: number; inFlight?: number }) {
  const lat: number[] = [];
  let next = 0;
  const started = performance.now();
  const deadline = o.ms ? started + o.ms : Infinity;
  await Promise.all(
    Array.from({ length: o.inFlight ?? CONNECTIONS }, async () => {
      for (;;) {
        const i = next++;
        if ((o.total !== undefined && i >= o.total) || performance.now() > deadline) return;
        const t = performance.now();
        await op(i);
        lat.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  lat.sort((a, b) => a - b);
  return { count: lat.length, perSecond: lat.length / seconds, p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), seconds };
}

async function post(s: Stack, body: unknown): Promise<void> {
  const r = await fetch(`${s.base}/v1/cases`, { method: 'POST', headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await r.arrayBuffer();
  if (r.status !== 202) throw new Error(`intake answered ${r.status}`);
}

/** autocannon at 64 connections against POST /v1/cases, each request a new realistic case. */
async function intakeRate(s: Stack, prefix: string, seconds: number) {
  let n = 0;
  const template = invCase('X');
  const res = await autocannon({
    url: s.base,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        path: '/v1/cases',
        headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
        setupRequest: (req: Record<string, unknown>) => ({ ...req, body: JSON.stringify({ ...template, caseNo: `${prefix}-${n++}` }) }),
      },
    ],
  });
  const ok = res['2xx'];
  return { perSecond: ok / res.duration, count: ok, p50: res.latency.p50, p99: res.latency.p99, non2xx: res.non2xx, errors: res.errors };
}

/**
 * The HTTP floor: a bare Fastify process (same Node, same body limit) that parses the same POSTs
 * and answers 202 with nothing else to do. What no gateway in one Node process can exceed here.
 */
async function httpFloor(seconds: number) {
  const port = await freePort();
  const src = `import Fastify from 'fastify';
const app = Fastify({ bodyLimit: 1048576 });
app.post('/v1/cases', async (req, reply) => reply.code(202).send({ caseNo: req.body.caseNo, status: 'IN_PROGRESS' }));
app.get('/health/ready', async () => ({ ok: true }));
await app.listen({ port: ${port}, host: '127.0.0.1' });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', src], { stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    for (let i = 0; !(await fetch(`http://127.0.0.1:${port}/health/ready`).then((r) => r.ok, () => false)); i++) {
      if (i > 100) throw new Error('echo server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    return await intakeRate({ base: `http://127.0.0.1:${port}`, token: 'none' } as Stack, 'ECHO', seconds);
  } finally {
    child.kill('SIGKILL');
  }
}

async function bareQueueAdd(redisUrl: string, seconds: number) {
  const conn = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const q = new Queue('bench-bare', { connection: conn as never, prefix: '{bench-bare}' });
  const body = invCase('X');
  const r = await closedLoop((i) => q.add('submit', { ...body, caseNo: `BARE-${i}` }, { jobId: `bare.${i}` }).then(() => undefined), { ms: seconds * 1000 });
  await q.obliterate({ force: true });
  await q.close();
  conn.disconnect();
  return r;
}

async function noopDrain(redisUrl: string, total: number) {
  const conn = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const q = new Queue('bench-noop', { connection: conn as never, prefix: '{bench-noop}' });
  let done = 0;
  let finished!: () => void;
  const all = new Promise<void>((r) => (finished = r));
  const w = new Worker(
    'bench-noop',
    async () => {
      if (++done === total) finished();
    },
    { connection: workerConnection({ kind: 'single', url: redisUrl }).connection, prefix: '{bench-noop}', concurrency: CONNECTIONS },
  );
  const started = performance.now();
  const body = invCase('X');
  await closedLoop((i) => q.add('submit', { ...body, caseNo: `NOOP-${i}` }, { jobId: `noop.${i}` }).then(() => undefined), { total });
  await all;
  const seconds = (performance.now() - started) / 1000;
  await w.close();
  await q.obliterate({ force: true });
  await q.close();
  conn.disconnect();
  return { perSecond: total / seconds, seconds };
}

async function waitAccepted(sims: Sims, target: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (sims.accepted() < target) {
    if (Date.now() > deadline) throw new Error(`departments accepted ${sims.accepted()} of ${target} routes`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** N mixed cases through the gateway to the four departments; seconds from first POST to the last acceptance. */
async function endToEnd(s: Stack, prefix: string, n: number) {
  const cases = Array.from({ length: n }, (_, i) => mixedCase(prefix, i));
  const routes = cases.reduce((a, c) => a + c.departments.length, 0);
  const before = s.sims.accepted();
  const started = performance.now();
  await closedLoop((i) => post(s, cases[i]!.body), { total: n });
  await waitAccepted(s.sims, before + routes, 600_000);
  const seconds = (performance.now() - started) / 1000;
  return { cases: n, routes, perSecond: n / seconds, seconds };
}

async function drained(s: Stack, queue: string) {
  for (;;) {
    const v = (await (await fetch(`${s.base}/ops/v1/queues`, { headers: { authorization: `Bearer ${s.opsToken}` } })).json()) as { items: Array<{ name: string; counts: Record<string, number> }> };
    const c = v.items.find((q) => q.name === queue)!.counts;
    if (!(c.waiting ?? 0) && !(c.active ?? 0)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface FlowBench {
  intake: {
    gateway: Awaited<ReturnType<typeof intakeRate>>;
    bare: Awaited<ReturnType<typeof bareQueueAdd>>;
    ratio: number;
    httpFloor: Awaited<ReturnType<typeof intakeRate>>;
    ofHttpFloor: number;
    /** CPU microseconds per case (API process, Redis) and per bare job (its process, Redis). */
    cpu: { apiMicrosPerCase: number; bareMicrosPerJob: number; redisMicrosPerCase: number; redisMicrosPerBareJob: number };
  };
  /** Intake against a primary with one replica, acknowledging after WAIT (waitReplicas 1) and without. */
  replicated: { waiting: Awaited<ReturnType<typeof intakeRate>>; notWaiting: Awaited<ReturnType<typeof intakeRate>>; ratio: number };
  endToEnd: { gateway: Awaited<ReturnType<typeof endToEnd>>; noop: Awaited<ReturnType<typeof noopDrain>>; ratio: number };
  growth: Array<{
    waiting: number;
    intakePerSecond: number;
    intakeP99: number;
    endToEndPerSecond: number;
    redisBytesPerWaitingCase: number;
    /** CPU microseconds per inv case end to end, by process. */
    endToEndCpuMicrosPerCase: { api: number; worker: number; redis: number };
    aofRewritesDuring: number;
    /** speedProbe() just before: the machine's own pace at that moment. */
    machineSpeed: number;
  }>;
}

/**
 * How fast this machine is right now: a fixed piece of case-shaped CPU work (canonical JSON and a
 * SHA-256 of a case), per second, in the bench process. Taken beside each growth step, it tells a
 * machine that slowed down over the run from a cost that grew with the backlog.
 */
function speedProbe(ms = 1000): number {
  const c = invCase('PROBE');
  let n = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    for (let i = 0; i < 50; i++) createHash('sha256').update(canonicalJson(c)).digest('hex');
    n += 50;
  }
  return n / (ms / 1000);
}

/** Inv cases sent end to end at each backlog. */
const E2E_GROWTH_CASES = 2000;

export async function benchFlow(o: { intakeSeconds: number; endToEndCases: number; backlogs: number[]; parts?: Set<string> }): Promise<Partial<FlowBench>> {
  const part = (p: string) => !o.parts || o.parts.has(p);
  const out: Partial<FlowBench> = {};
  // 1. Intake: the API alone (no workers competing for the two cores), then the bare baseline.
  if (part('intake')) {
    const s = await startStack(['api']);
    try {
      await intakeRate(s, 'WARM', 2);
      // CPU time per case of the API process and of the bare loop's process: the throughput each
      // would have per core of its own, which the shared two cores of this machine blur.
      const pids = { api: s.procs[0]!.pid, redis: s.redis.child.pid };
      const g = await cpuOf(pids, () => intakeRate(s, 'INTAKE', o.intakeSeconds));
      const b = await cpuOf({ redis: s.redis.child.pid }, () => bareQueueAdd(s.redis.url, o.intakeSeconds));
      const gateway = g.result;
      const bare = b.result;
      const gatewayCases = gateway.count;
      const bareJobs = bare.count;
      const cpu = {
        apiMicrosPerCase: (g.cpuSeconds.api! / gatewayCases) * 1e6,
        bareMicrosPerJob: (b.cpuSeconds.self! / bareJobs) * 1e6,
        redisMicrosPerCase: (g.cpuSeconds.redis! / gatewayCases) * 1e6,
        redisMicrosPerBareJob: (b.cpuSeconds.redis! / bareJobs) * 1e6,
      };
      const floor = await httpFloor(o.intakeSeconds);
      out.intake = { gateway, bare, ratio: gateway.perSecond / bare.perSecond, httpFloor: floor, ofHttpFloor: gateway.perSecond / floor.perSecond, cpu };
    } finally {
      await s.close();
    }
  }

  // 1b. The price of redis.waitReplicas: intake on a primary with one replica, with and without
  // waiting for it, each in its own API process, in the same run.
  if (part('replicas')) {
    const rates: Record<'0' | '1', Awaited<ReturnType<typeof intakeRate>>> = {} as never;
    for (const wait of ['0', '1'] as const) {
      const s = await startStack(['api'], { replica: true, env: { GATEWAY_REDIS_WAIT_REPLICAS: wait } });
      try {
        await intakeRate(s, `WARM-R${wait}`, 2);
        rates[wait] = await intakeRate(s, `REPL-${wait}`, o.intakeSeconds);
      } finally {
        await s.close();
      }
    }
    out.replicated = { waiting: rates['1'], notWaiting: rates['0'], ratio: rates['1'].perSecond / rates['0'].perSecond };
  }

  // 2. End to end, one API and one worker process; then a no-op worker on the same Redis.
  if (part('e2e')) {
    const s = await startStack(['api', 'worker']);
    try {
      await endToEnd(s, 'E2E-WARM', 200);
      const gateway = await endToEnd(s, 'E2E', o.endToEndCases);
      const noop = await noopDrain(s.redis.url, o.endToEndCases);
      out.endToEnd = { gateway, noop, ratio: gateway.perSecond / noop.perSecond };
    } finally {
      await s.close();
    }
  }
  if (!part('growth')) return out;

  // 3. Cost growth: tax paused, its cases pile up; inv keeps flowing.
  const s = await startStack(['api', 'worker']);
  const growth: FlowBench['growth'] = [];
  try {
    const r = await fetch(`${s.base}/ops/v1/queues/dept-tax/pause`, { method: 'POST', headers: { authorization: `Bearer ${s.opsToken}` } });
    if (!r.ok) throw new Error(`pause answered ${r.status}`);
    const probe = new Redis(s.redis.url);
    const used = async () => Number(/used_memory:(\d+)/.exec(await probe.info('memory'))![1]);
    // Redis rewrites its AOF as it grows (a fork and a full write): counted, since it takes CPU from everyone.
    const aofRewrites = async () => Number(/aof_rewrites:(\d+)/.exec(await probe.info('persistence'))?.[1] ?? 0);
    let waiting = 0;
    let grownBytes = 0;
    const taxCase = (i: number) => sampleCaseFor('640100-TAX-0301', `BACKLOG-${i}`);
    for (const target of o.backlogs) {
      const m0 = await used();
      const from = waiting;
      await closedLoop((i) => post(s, taxCase(from + i)), { total: target - from });
      waiting = target;
      grownBytes += (await used()) - m0;
      const intakeNow = await intakeRate(s, `GROW-${target}`, Math.max(3, Math.round(o.intakeSeconds / 2)));
      // The inv cases of the intake run are delivered before the end-to-end figure starts.
      await drained(s, 'dept-inv');
      const invOnly = async (n: number) => {
        const started = performance.now();
        await closedLoop((i) => post(s, invCase(`GROW-E2E-${target}-${i}`)), { total: n });
        const deadline = Date.now() + 300_000;
        while (![...Array(n).keys()].every((i) => s.sims.inv.accepted.has(routeKey(`GROW-E2E-${target}-${i}`, 'inv' as DepartmentId)))) {
          if (Date.now() > deadline) throw new Error('inv did not catch up');
          await new Promise((res) => setTimeout(res, 20));
        }
        return n / ((performance.now() - started) / 1000);
      };
      // CPU per case of each process as well as the rate: the rate on two shared cores moves with
      // whatever else runs; the CPU a case costs is what would grow if the backlog cost anything.
      const machineSpeed = speedProbe();
      const rewritesBefore = await aofRewrites();
      const e2e = await cpuOf({ api: s.procs[0]!.pid, worker: s.procs[1]!.pid, redis: s.redis.child.pid }, () => invOnly(E2E_GROWTH_CASES));
      const e2eNow = e2e.result;
      const cpuMicrosPerCase = {
        api: (e2e.cpuSeconds.api! / E2E_GROWTH_CASES) * 1e6,
        worker: (e2e.cpuSeconds.worker! / E2E_GROWTH_CASES) * 1e6,
        redis: (e2e.cpuSeconds.redis! / E2E_GROWTH_CASES) * 1e6,
      };
      const aofRewritesDuring = (await aofRewrites()) - rewritesBefore;
      growth.push({ waiting: target, intakePerSecond: intakeNow.perSecond, intakeP99: intakeNow.p99, endToEndPerSecond: e2eNow, redisBytesPerWaitingCase: grownBytes / waiting, endToEndCpuMicrosPerCase: cpuMicrosPerCase, aofRewritesDuring, machineSpeed });
      process.stdout.write(
        `  backlog ${target.toLocaleString('en')}: intake ${Math.round(intakeNow.perSecond)}/s (p99 ${intakeNow.p99} ms), inv end to end ${Math.round(e2eNow)}/s (CPU per case: worker ${cpuMicrosPerCase.worker.toFixed(0)} µs, api ${cpuMicrosPerCase.api.toFixed(0)} µs, Redis ${cpuMicrosPerCase.redis.toFixed(0)} µs; AOF rewrites ${aofRewritesDuring}; machine speed probe ${Math.round(machineSpeed)}/s), ${Math.round(grownBytes / waiting)} B of Redis per waiting case\n`,
      );
    }
    probe.disconnect();
  } finally {
    await s.close();
  }
  out.growth = growth;
  return out;
}
