/**
 * The workers of this process: one per enabled department (its own concurrency and rate limit)
 * and one for platform events, each with its own blocking connection (maxRetriesPerRequest: null),
 * each watched by the ConsumerWatchdog, which recreates a worker that stopped consuming.
 */
import { Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { DepartmentId } from '../model/case.js';
import { handleCheck, handleSubmit, type DeliveryDeps } from './delivery.js';
import { handlePushMaterial, type MaterialDeps, type PushJob } from './materials.js';
import { createEventSender, handleNotify, type NotifyDeps } from './notify.js';
import { workerConnection, type RedisTarget } from './redis-client.js';
import { deptQueueName, jitterBackoff, NOTIFY_QUEUE, queuePrefix, type CheckJob, type NotifyJob, type Queues, type SubmitJob } from './queues.js';
import { ConsumerWatchdog, WATCHDOG_DEFAULTS, type WatchdogSettings, type WatchedConsumer } from './watchdog.js';

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
  /** The queues on the command connection: the watchdog reads their counts without the workers' connections. */
  queues: Queues;
  watchdog?: WatchdogSettings;
}

// Finished jobs are kept a while so a re-add of the same id is a no-op; the ledger guards beyond that.
const KEEP_COMPLETED = { age: 7 * 24 * 3600, count: 100_000 };
const KEEP_FAILED = { age: 30 * 24 * 3600 };

export class WorkerPool {
  private watchdog: ConsumerWatchdog | null = null;

  constructor(private readonly o: WorkerPoolOptions) {}

  start(): void {
    // BullMQ's own option names; a spread of our `…Ms` names would be silently ignored.
    const stall = { lockDuration: this.o.stall.lockDurationMs, stalledInterval: this.o.stall.stalledIntervalMs, maxStalledCount: this.o.stall.maxStalledCount };
    const consumers: WatchedConsumer[] = [];
    for (const [dept, s] of this.o.departments) {
      const name = deptQueueName(dept);
      consumers.push({
        name,
        concurrency: s.concurrency,
        limiterMax: s.rateLimit.max,
        queue: this.o.queues.dept(dept),
        build: () => {
          const c = workerConnection(this.o.redis);
          const worker: Worker = new Worker(
            name,
            async (job: Job, token?: string) => {
              if (job.name === 'submit') return handleSubmit(job as Job<SubmitJob>, worker, this.o.delivery);
              if (job.name === 'check') return handleCheck(job as Job<CheckJob>, token, this.o.delivery);
              if (job.name === 'push-material') return handlePushMaterial(job as Job<PushJob>, worker, { ...this.o.delivery, ...this.o.materials });
              throw new Error(`unknown job ${job.name}`);
            },
            {
              connection: c.connection,
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
          return { worker, closeConnection: c.close };
        },
      });
    }
    const send = createEventSender(this.o.notify.timeoutMs);
    consumers.push({
      name: NOTIFY_QUEUE,
      concurrency: this.o.notify.concurrency,
      queue: this.o.queues.notify,
      build: () => {
        const c = workerConnection(this.o.redis);
        const worker = new Worker(NOTIFY_QUEUE, (job: Job, token?: string) => handleNotify(job as Job<NotifyJob>, token, this.o.notify, send), {
          connection: c.connection,
          prefix: queuePrefix(this.o.ns, NOTIFY_QUEUE),
          concurrency: this.o.notify.concurrency,
          ...stall,
          settings: { backoffStrategy: jitterBackoff(this.o.notify.maxDelayMs) },
          removeOnComplete: KEEP_COMPLETED,
          removeOnFail: KEEP_FAILED,
        });
        this.watch(worker, 'platform');
        return { worker, closeConnection: c.close };
      },
    });
    this.watchdog = new ConsumerWatchdog(consumers, this.o.watchdog ?? WATCHDOG_DEFAULTS, this.o.log.child({ part: 'watchdog' }), (queue) => this.o.delivery.metrics?.workerRecreations.inc({ queue }));
    this.watchdog.start();
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
  }

  /** Every worker running and, as far as the watchdog can tell, consuming. */
  running(): boolean {
    return this.watchdog?.healthy() ?? false;
  }

  /** Closes every worker, letting running jobs finish, within `deadlineMs` (close has no deadline of its own). */
  async close(deadlineMs = 10_000): Promise<void> {
    await this.watchdog?.close(deadlineMs);
    this.watchdog = null;
  }
}
