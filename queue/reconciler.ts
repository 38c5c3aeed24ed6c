/**
 * Heals the gaps between ledger writes and queue writes: events recorded but not delivered get
 * their notify job again (re-adding a job id that exists is harmless, handlers are idempotent),
 * and a result check that failed for good (e.g. Redis was away longer than its retries) is
 * re-driven while its route is still open, so no route is left unfollowed. Submissions need no
 * healing: they leave through the outbox (outbox.ts).
 */
import type { RedisClient } from './redis-client.js';
import type { Logger } from 'pino';
import type { Ledger } from './ledger.js';
import type { Queues } from './queues.js';
import type { DepartmentId } from '../model/case.js';
import { isFinalRouteStatus } from '../model/case.js';

/** A failed check is re-driven no sooner than this after it failed, so a broken one cannot spin. */
const CHECK_REDRIVE_AFTER_MS = 60_000;

export class Reconciler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly redis: RedisClient,
    private readonly ledger: Ledger,
    private readonly queues: Queues,
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly graceMs: number,
    private readonly departments: DepartmentId[] = [],
    private readonly checkRedriveAfterMs = CHECK_REDRIVE_AFTER_MS,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.runOnce().then(() => undefined, (e) => this.log.warn({ err: (e as Error).message }, 'reconciler pass failed')).finally(() => (this.running = null));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass; returns what it re-queued. Only one process runs a pass at a time. */
  async runOnce(): Promise<{ notifies: number; checks: number }> {
    const lock = `{${this.ledger.ns}}:lock:reconciler`;
    const got = await this.redis.set(lock, String(process.pid), 'PX', Math.max(this.intervalMs * 2, 5000), 'NX');
    if (!got) return { notifies: 0, checks: 0 };
    try {
      let notifies = 0;
      for (const caseNo of await this.ledger.pendingNotifies(this.graceMs)) {
        const st = await this.ledger.deliveryState(caseNo);
        if (!st) continue;
        if (st.delivered < st.seq) {
          await this.queues.addNotify(caseNo, st.seq);
          notifies++;
        } else await this.ledger.markDelivered(caseNo, st.seq);
      }
      const checks = await this.redriveFailedChecks();
      if (notifies || checks) this.log.info({ notifies, checks }, 'reconciler re-queued work');
      return { notifies, checks };
    } finally {
      await this.redis.del(lock);
    }
  }

  private async redriveFailedChecks(): Promise<number> {
    let n = 0;
    for (const d of this.departments) {
      const q = this.queues.dept(d);
      // Ids first (cheap), jobs only for checks: failed submissions may be many and are not ours here.
      const ids = (await q.getRanges(['failed'], 0, 999, true)).filter((id) => id.startsWith('check.'));
      for (const id of ids) {
        const job = await q.getJob(id);
        if (!job || Date.now() - (job.finishedOn ?? 0) < this.checkRedriveAfterMs) continue;
        const doc = await this.ledger.get((job.data as { caseNo: string }).caseNo);
        const route = doc?.routes.find((r) => r.department === d);
        if (!route || isFinalRouteStatus(route.status)) continue;
        await job.retry('failed');
        n++;
      }
    }
    return n;
  }
}
