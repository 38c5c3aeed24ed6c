/**
 * The workers of this process: one per enabled department (its own concurrency and rate limit)
 * and one for platform events, each with its own blocking connection (maxRetriesPerRequest: null).
 */
import { Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { DepartmentId } from '../model/case.js';
import { handleCheck, handleSubmit, type DeliveryDeps } from './delivery.js';
import { handlePushMaterial, type MaterialDeps, type PushJob } from './materials.js';
import { createEventSender, handleNotify, type NotifyDeps } from './notify.js';
import { workerConnection, type RedisTarget } from './redis-client.js';
import { deptQueueName, jitterBackoff, NOTIFY_QUEUE, queuePrefix, type CheckJob, type NotifyJob, type SubmitJob } from './queues.js';

export interface DeptWorkerSettings {
  concurrency: number;
  rateLimit: { max: number; durationMs: number };
  maxDelayMs: number;
}

export interface WorkerPoolOptions {
  redis: RedisTarget;
  ns: string;
  departments: Map<DepartmentId, DeptWorkerSettings>;
  delivery: DeliveryDeps;
  notify: NotifyDeps & { concurrency: number; maxDelayMs: number };
  log: Logger;
  stall: { lockDurationMs: number; stalledIntervalMs: number; maxStalledCount: number };
  materials: MaterialDeps;
}

// Finished jobs are kept a while so a re-add of the same id is a no-op; the ledger guards beyond that.
const KEEP_COMPLETED = { age: 7 * 24 * 3600, count: 100_000 };
const KEEP_FAILED = { age: 30 * 24 * 3600 };

export class WorkerPool {
  private workers: Worker[] = [];
  private connections: Array<() => Promise<void>> = [];

  constructor(private readonly o: WorkerPoolOptions) {}

  start(): void {
    // BullMQ's own option names; a spread of our `…Ms` names would be silently ignored.
    const stall = { lockDuration: this.o.stall.lockDurationMs, stalledInterval: this.o.stall.stalledIntervalMs, maxStalledCount: this.o.stall.maxStalledCount };
    const connect = () => {
      const c = workerConnection(this.o.redis);
      this.connections.push(c.close);
      return c.connection;
    };
    for (const [dept, s] of this.o.departments) {
      const name = deptQueueName(dept);
      const worker: Worker = new Worker(
        name,
        async (job: Job, token?: string) => {
          if (job.name === 'submit') return handleSubmit(job as Job<SubmitJob>, worker, this.o.delivery);
          if (job.name === 'check') return handleCheck(job as Job<CheckJob>, token, this.o.delivery);
          if (job.name === 'push-material') return handlePushMaterial(job as Job<PushJob>, worker, { ...this.o.delivery, ...this.o.materials });
          throw new Error(`unknown job ${job.name}`);
        },
        {
          connection: connect(),
          prefix: queuePrefix(this.o.ns, name),
          concurrency: s.concurrency,
          ...stall,
          limiter: { max: s.rateLimit.max, duration: s.rateLimit.durationMs },
          settings: { backoffStrategy: jitterBackoff(s.maxDelayMs) },
          removeOnComplete: KEEP_COMPLETED,
          removeOnFail: KEEP_FAILED,
        },
      );
      this.watch(worker, dept);
    }
    const send = createEventSender(this.o.notify.timeoutMs);
    const notify = new Worker(NOTIFY_QUEUE, (job: Job, token?: string) => handleNotify(job as Job<NotifyJob>, token, this.o.notify, send), {
      connection: connect(),
      prefix: queuePrefix(this.o.ns, NOTIFY_QUEUE),
      concurrency: this.o.notify.concurrency,
      ...stall,
      settings: { backoffStrategy: jitterBackoff(this.o.notify.maxDelayMs) },
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
    });
    this.watch(notify, 'platform');
  }

  private watch(w: Worker, target: string) {
    w.on('failed', (job, err) => {
      if (!job) return;
      const final = job.attemptsMade >= (job.opts.attempts ?? 1) || err.name === 'UnrecoverableError';
      const m = this.o.delivery.metrics;
      if (m) (final ? m.jobsFailed : m.retries).inc({ queue: w.name });
      this.o.log[final ? 'error' : 'debug']({ target, jobId: job.id, attemptsMade: job.attemptsMade, err: err.message }, final ? 'job failed for good' : 'job will be retried');
    });
    w.on('error', (err) => this.o.log.error({ target, err: err.message }, 'worker error'));
    this.workers.push(w);
  }

  running(): boolean {
    return this.workers.length > 0 && this.workers.every((w) => w.isRunning());
  }

  /** Closes every worker, letting running jobs finish, within `deadlineMs` (close has no deadline of its own). */
  async close(deadlineMs = 10_000): Promise<void> {
    const all = Promise.all(this.workers.map((w) => w.close()));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), deadlineMs)));
    const res = await Promise.race([all.then(() => 'ok' as const), late]);
    clearTimeout(timer);
    if (res === 'late') {
      this.o.log.warn({ deadlineMs }, 'workers did not close in time; forcing (their jobs will be picked up again)');
      await Promise.all(this.workers.map((w) => w.close(true).catch(() => undefined)));
    }
    this.workers = [];
    await Promise.all(this.connections.map((close) => close()));
    this.connections = [];
  }
}
