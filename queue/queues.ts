/**
 * Queue names, deterministic job ids and job options. Each department has its own queue (so its
 * concurrency, rate limit and outages are its own); platform events have theirs. Every queue has its
 * own `{…}` hash-tag prefix so queues spread over a Redis Cluster.
 */
import { Queue, type BackoffStrategy, type ConnectionOptions, type JobsOptions } from 'bullmq';
import type { RedisClient } from './redis-client.js';
import type { DepartmentId } from '../model/case.js';

export const deptQueueName = (d: DepartmentId) => `dept-${d}`;
export const NOTIFY_QUEUE = 'notify';
export const queuePrefix = (ns: string, name: string) => `{${ns}-${name}}`;

/** Job ids never contain ':' (BullMQ); '.' cannot occur in a caseNo, so ids are unambiguous. */
export const jobIds = {
  submit: (caseNo: string, d: DepartmentId) => `submit.${caseNo}.${d}`,
  check: (caseNo: string, d: DepartmentId) => `check.${caseNo}.${d}`,
  notify: (caseNo: string, seq: number) => `notify.${caseNo}.${seq}`,
  /** Material ids are [A-Za-z0-9_-]; the generation makes a later supplement of the same id a new job. */
  push: (caseNo: string, d: DepartmentId, materialId: string, generation: number) => `material.${caseNo}.${d}.${materialId}.${generation}`,
};

export interface SubmitJob {
  caseNo: string;
  department: DepartmentId;
}
export type CheckJob = SubmitJob;
export interface NotifyJob {
  caseNo: string;
  seq: number;
}

/** Exponential backoff with equal jitter, capped: half the step fixed, half random. */
export function jitterBackoff(maxDelayMs: number, random: () => number = Math.random): BackoffStrategy {
  return (attemptsMade, _type, _err, job) => {
    const base = (job?.opts.backoff as { delay?: number } | undefined)?.delay ?? 1000;
    const step = Math.min(maxDelayMs, base * 2 ** Math.max(0, attemptsMade - 1));
    return Math.round(step / 2 + random() * (step / 2));
  };
}

export interface RetrySettings {
  attempts: number;
  baseDelayMs: number;
}

/**
 * A Queue re-emits its connection's errors; with no listener BullMQ prints each one with
 * console.error, past the logger. The connection's owner logs them already (gateway/runtime.ts).
 */
function quiet(q: Queue): Queue {
  q.on('error', () => undefined);
  return q;
}

export class Queues {
  private readonly depts = new Map<DepartmentId, Queue>();
  readonly notify: Queue;

  constructor(
    /** A producer connection with enableOfflineQueue off: a Redis outage fails at once. */
    private readonly connection: RedisClient,
    readonly ns: string,
    private readonly retry: (d: DepartmentId) => RetrySettings,
    private readonly eventRetry: RetrySettings,
  ) {
    this.notify = quiet(new Queue(NOTIFY_QUEUE, { connection: connection as unknown as ConnectionOptions, prefix: queuePrefix(ns, NOTIFY_QUEUE) }));
  }

  dept(d: DepartmentId): Queue {
    let q = this.depts.get(d);
    if (!q) {
      const name = deptQueueName(d);
      q = quiet(new Queue(name, { connection: this.connection as unknown as ConnectionOptions, prefix: queuePrefix(this.ns, name) }));
      this.depts.set(d, q);
    }
    return q;
  }

  all(): Queue[] {
    return [...this.depts.values(), this.notify];
  }

  async addSubmit(caseNo: string, d: DepartmentId): Promise<void> {
    const r = this.retry(d);
    const opts: JobsOptions = { jobId: jobIds.submit(caseNo, d), attempts: r.attempts, backoff: { type: 'jitter', delay: r.baseDelayMs } };
    await this.dept(d).add('submit', { caseNo, department: d } satisfies SubmitJob, opts);
  }

  /** One long-lived check job per route: it re-delays itself until the route is final. */
  /** Many submissions to one department in one round trip (the outbox dispatcher's batches). */
  async addSubmits(d: DepartmentId, caseNos: string[]): Promise<void> {
    const r = this.retry(d);
    await this.dept(d).addBulk(
      caseNos.map((caseNo) => ({ name: 'submit', data: { caseNo, department: d } satisfies SubmitJob, opts: { jobId: jobIds.submit(caseNo, d), attempts: r.attempts, backoff: { type: 'jitter', delay: r.baseDelayMs } } })),
    );
  }

  async addCheck(caseNo: string, d: DepartmentId, delayMs: number): Promise<void> {
    // The job re-delays itself while the route is open (no attempt spent); attempts are for errors
    // of its own, such as Redis going away mid-check, which must not end the following of a result.
    const r = this.retry(d);
    await this.dept(d).add('check', { caseNo, department: d } satisfies CheckJob, { jobId: jobIds.check(caseNo, d), delay: delayMs, attempts: r.attempts, backoff: { type: 'jitter', delay: r.baseDelayMs } });
  }

  async addPushMaterial(caseNo: string, d: DepartmentId, materialId: string, generation: number): Promise<void> {
    const r = this.retry(d);
    await this.dept(d).add('push-material', { caseNo, department: d, materialId }, { jobId: jobIds.push(caseNo, d, materialId, generation), attempts: r.attempts, backoff: { type: 'jitter', delay: r.baseDelayMs } });
  }

  async addNotify(caseNo: string, seq: number): Promise<void> {
    const r = this.eventRetry;
    await this.notify.add('notify', { caseNo, seq } satisfies NotifyJob, {
      jobId: jobIds.notify(caseNo, seq),
      attempts: r.attempts,
      backoff: { type: 'jitter', delay: r.baseDelayMs },
    });
  }

  /**
   * Removes the case's jobs that are waiting or delayed for `d` (submit, check, material pushes).
   * A job running now cannot be removed: its handler finds the route withdrawn and stops.
   */
  async removeCaseJobs(caseNo: string, d: DepartmentId, materials: { id: string; generation?: number }[]): Promise<number> {
    const q = this.dept(d);
    const ids = [jobIds.submit(caseNo, d), jobIds.check(caseNo, d), ...materials.map((m) => jobIds.push(caseNo, d, m.id, m.generation ?? 1))];
    let removed = 0;
    for (const id of ids) {
      const job = await q.getJob(id);
      if (!job) continue;
      const state = await job.getState();
      if (state === 'waiting' || state === 'delayed' || state === 'prioritized' || state === 'failed') {
        try {
          await job.remove();
          removed++;
        } catch {
          /* taken by a worker meanwhile: its handler sees the withdrawal */
        }
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((q) => q.close()));
  }
}
