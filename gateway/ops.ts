/**
 * The ops API (admin-ops-api.md, Ops): every queue's counts, oldest waiting age, throughput over
 * the last minute, paused or not and the department's circuit state; jobs by state; re-drive of
 * failed jobs; pause and resume (a planned outage, nothing lost). `ops` (and `admin`) only.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Job, Queue } from 'bullmq';
import { DEPARTMENTS, type DepartmentId } from '../model/case.js';
import { GatewayError } from '../model/errors.js';
import type { Queues } from '../queue/queues.js';
import type { Role } from './tokens.js';
import { audit, type Principal } from './tokens.js';
import type { RedisClient } from '../queue/redis-client.js';

export interface OpsDeps {
  redis: RedisClient;
  ns: string;
  queues: Queues;
  enabled: readonly DepartmentId[];
  /** Routes recorded by intake and not yet in their queue. */
  outbox: () => Promise<{ routes: number; oldestWaitingSeconds: number }>;
  circuit: (d: DepartmentId) => Promise<{ state: string; failures: number; openedAt: string | null; nextProbeAt: string | null }>;
  guard: (allowed: (r: Role) => boolean) => (req: FastifyRequest) => Promise<void>;
}

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children'] as const;
type State = (typeof STATES)[number];

function queueByName(d: OpsDeps, name: string): { queue: Queue; department: DepartmentId | null } {
  if (name === 'notify') return { queue: d.queues.notify, department: null };
  const m = /^dept-(\w+)$/.exec(name);
  const dept = m?.[1] as DepartmentId | undefined;
  if (!dept || !DEPARTMENTS.includes(dept) || !d.enabled.includes(dept)) throw new GatewayError('NOT_FOUND', `no queue ${name}`);
  return { queue: d.queues.dept(dept), department: dept };
}

function jobView(j: Job) {
  const data = j.data as { caseNo?: string; department?: string; materialId?: string; seq?: number };
  return {
    id: j.id,
    name: j.name,
    caseNo: data.caseNo ?? null,
    route: data.department ?? null,
    materialId: data.materialId ?? null,
    attemptsMade: j.attemptsMade,
    attempts: j.opts.attempts ?? 1,
    lastError: j.failedReason ?? null,
    createdAt: new Date(j.timestamp).toISOString(),
    processedAt: j.processedOn ? new Date(j.processedOn).toISOString() : null,
    finishedAt: j.finishedOn ? new Date(j.finishedOn).toISOString() : null,
  };
}

export function registerOpsRoutes(app: FastifyInstance, d: OpsDeps): void {
  const ops = d.guard((r) => r === 'ops');

  app.get('/ops/v1/queues', { preHandler: ops }, async () => {
    const items = [];
    const names = [...d.enabled.map((x) => `dept-${x}`), 'notify'];
    for (const name of names) {
      const { queue, department } = queueByName(d, name);
      const counts = await queue.getJobCounts(...STATES);
      const [oldest] = await queue.getJobs(['waiting'], 0, 0, true);
      const minuteAgo = Date.now() - 60_000;
      const done = await queue.getJobs(['completed'], 0, 199, false);
      items.push({
        name,
        department,
        counts,
        oldestWaitingAgeSeconds: oldest ? Math.round((Date.now() - oldest.timestamp) / 1000) : null,
        completedLastMinute: done.filter((j) => (j.finishedOn ?? 0) >= minuteAgo).length,
        paused: await queue.isPaused(),
        circuit: department ? await d.circuit(department) : null,
      });
    }
    // Beside the queues: what intake has recorded and no worker process has queued yet.
    const ob = await d.outbox();
    return { items, outbox: { routes: ob.routes, oldestWaitingAgeSeconds: Math.round(ob.oldestWaitingSeconds) } };
  });

  app.get<{ Params: { name: string }; Querystring: { state?: string; start?: string; limit?: string } }>('/ops/v1/queues/:name/jobs', { preHandler: ops }, async (req) => {
    const { queue } = queueByName(d, req.params.name);
    const state = (req.query.state ?? 'failed') as State;
    if (!STATES.includes(state)) throw new GatewayError('VALIDATION_FAILED', 'unknown state', [{ path: 'state', code: 'INVALID', message: `one of ${STATES.join(', ')}` }]);
    const start = Number(req.query.start ?? 0);
    const limit = Math.min(Number(req.query.limit ?? 50), 500);
    if (!Number.isInteger(start) || start < 0 || !Number.isInteger(limit) || limit < 1)
      throw new GatewayError('VALIDATION_FAILED', 'bad paging', [{ path: 'limit', code: 'INVALID', message: 'start ≥ 0, limit 1–500' }]);
    const jobs = await queue.getJobs([state], start, start + limit - 1, state !== 'waiting');
    return { queue: req.params.name, state, items: jobs.filter(Boolean).map(jobView) };
  });

  app.post<{ Params: { name: string }; Body: { jobIds?: unknown } | undefined }>('/ops/v1/queues/:name/retry', { preHandler: ops }, async (req) => {
    const { queue } = queueByName(d, req.params.name);
    const body: unknown = req.body;
    // Anything but nothing, {} or {"jobIds": [...]} is a mistake, never a licence to re-drive everything.
    if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body) || Object.keys(body).some((k) => k !== 'jobIds')))
      throw new GatewayError('VALIDATION_FAILED', 'body must be empty, {} or {"jobIds": [...]}', [{ path: '', code: 'INVALID', message: 'only jobIds is known' }]);
    const ids = (body as { jobIds?: unknown } | null | undefined)?.jobIds;
    let retried = 0;
    if (ids === undefined) {
      retried = (await queue.getJobCounts('failed')).failed ?? 0;
      await queue.retryJobs({ state: 'failed', count: 1000 });
    } else {
      if (!Array.isArray(ids) || !ids.every((x) => typeof x === 'string')) throw new GatewayError('VALIDATION_FAILED', 'jobIds must be a list of job ids', [{ path: 'jobIds', code: 'INVALID', message: 'a list of strings' }]);
      for (const id of ids as string[]) {
        const job = await queue.getJob(id);
        if (!job) throw new GatewayError('NOT_FOUND', `no job ${id}`, [{ path: 'jobIds', code: 'NOT_FOUND', message: id }]);
        if ((await job.getState()) !== 'failed') continue;
        await job.retry('failed');
        retried++;
      }
    }
    await audit(d.redis, d.ns, req.principal as Principal, 'queue.retry', req.params.name, null, { jobIds: ids ?? 'all failed', retried });
    return { queue: req.params.name, retried };
  });

  for (const action of ['pause', 'resume'] as const) {
    app.post<{ Params: { name: string } }>(`/ops/v1/queues/:name/${action}`, { preHandler: ops }, async (req) => {
      const { queue } = queueByName(d, req.params.name);
      // Queue-wide in Redis: every worker process of this queue stops taking (or takes again) jobs.
      if (action === 'pause') await queue.pause();
      else await queue.resume();
      await audit(d.redis, d.ns, req.principal as Principal, `queue.${action}`, req.params.name, null, null);
      return { queue: req.params.name, paused: await queue.isPaused() };
    });
  }
}
