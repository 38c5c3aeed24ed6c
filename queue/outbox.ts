/**
 * The submission outbox. Intake records a case and, in the same Lua script, puts its routes in
 * `pending:submit`, then answers: one Redis write per case, and nothing can fall between a ledger
 * write and a queue write. The dispatcher, in every worker process, claims pending routes in
 * batches (a lease, so dispatchers in other processes take other routes), adds their submission
 * jobs with one addBulk per department and clears them. Job ids are deterministic, so a batch
 * added twice (a claimer that died after adding, before clearing) adds nothing twice.
 */
import type { Logger } from 'pino';
import type { DepartmentId } from '../model/case.js';
import type { Ledger } from './ledger.js';
import type { Queues } from './queues.js';

export interface OutboxSettings {
  /** Routes taken per pass. */
  batch: number;
  /** How long a claimed route is left to its claimer before another dispatcher may take it. */
  leaseMs: number;
  /** Idle polling: from `idleMinMs`, doubling while the outbox stays empty, up to `idleMaxMs`. */
  idleMinMs: number;
  idleMaxMs: number;
}

export const OUTBOX_DEFAULTS: OutboxSettings = { batch: 500, leaseMs: 15_000, idleMinMs: 5, idleMaxMs: 100 };

export class OutboxDispatcher {
  private stopped = true;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly ledger: Ledger,
    private readonly queues: Queues,
    private readonly log: Logger,
    private readonly s: OutboxSettings = OUTBOX_DEFAULTS,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    this.loop = null;
  }

  /** One pass: claims a batch, queues it, clears it; returns how many routes it moved. */
  async drainOnce(): Promise<number> {
    const refs = await this.ledger.claimPendingSubmits(this.s.batch, this.s.leaseMs);
    if (!refs.length) return 0;
    const byDept = new Map<DepartmentId, string[]>();
    for (const r of refs) {
      const list = byDept.get(r.department);
      if (list) list.push(r.caseNo);
      else byDept.set(r.department, [r.caseNo]);
    }
    await Promise.all([...byDept].map(([d, caseNos]) => this.queues.addSubmits(d, caseNos)));
    await this.ledger.clearPendingSubmit(refs);
    return refs.length;
  }

  private async run(): Promise<void> {
    let idle = this.s.idleMinMs;
    while (!this.stopped) {
      let moved = 0;
      try {
        moved = await this.drainOnce();
      } catch (e) {
        // Claimed routes stay in the outbox and are claimed again when their lease ends.
        this.log.warn({ err: (e as Error).message, retryInMs: this.s.leaseMs }, 'outbox pass failed; its routes will be queued when their lease ends');
        idle = this.s.idleMaxMs;
      }
      if (moved) {
        idle = this.s.idleMinMs;
        continue;
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, idle);
        this.wake = () => (clearTimeout(t), r());
      });
      this.wake = null;
      idle = Math.min(this.s.idleMaxMs, idle * 2);
    }
  }
}
