/**
 * Proves that this process's BullMQ workers still consume, and recreates one that does not.
 *
 * BullMQ workers have been seen to stop consuming after a Redis restart while producers carry on
 * (ARCHITECTURE.md): a blocking connection that never answers again leaves a worker that reports
 * itself running and takes no job. Such a worker is told apart from an idle or a busy one by what
 * the queue says on the producers' connection: jobs are waiting, the queue is neither paused nor
 * rate limited, the worker has free slots, and it has shown no sign of life (a job started or
 * finished, progress, a drained queue) for `stuckAfterMs`, on two checks in a row.
 */
import type { Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';

export interface WatchedConsumer {
  /** The queue's name, for logs and metrics. */
  readonly name: string;
  readonly concurrency: number;
  /** The limiter's max jobs, so a queue held back by its own limiter is not taken for stuck. */
  readonly limiterMax?: number;
  /** The same queue on the producers' (command) connection: read without the worker's connections. */
  readonly queue: Queue;
  /** A fresh Worker on fresh connections, and how to close those connections after it. */
  build(): { worker: Worker; closeConnection(): Promise<void> };
}

export interface WatchdogSettings {
  checkIntervalMs: number;
  /** No sign of life for this long, with jobs waiting and free slots: the worker is stuck. */
  stuckAfterMs: number;
  /** How long to wait for a stuck worker to close before letting it go. */
  closeDeadlineMs: number;
}

export const WATCHDOG_DEFAULTS: WatchdogSettings = { checkIntervalMs: 15_000, stuckAfterMs: 60_000, closeDeadlineMs: 5_000 };

interface Watched {
  consumer: WatchedConsumer;
  worker: Worker;
  closeConnection(): Promise<void>;
  inFlight: number;
  lastSignOfLife: number;
  /** When a check first found it apparently stuck; cleared by any sign of life. */
  suspectSince: number | null;
}

/** Waits for `p`, or gives up after `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<'ok' | 'late'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
  const res = await Promise.race([p.then(() => 'ok' as const), late]);
  clearTimeout(timer);
  return res;
}

export class ConsumerWatchdog {
  private watched: Watched[] = [];
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<unknown> | null = null;
  private closed = false;

  constructor(
    private readonly consumers: WatchedConsumer[],
    private readonly settings: WatchdogSettings,
    private readonly log: Logger,
    /** Told of every worker recreated (metrics). */
    private readonly onRecreated: (name: string) => void = () => undefined,
  ) {}

  start(): void {
    this.watched = this.consumers.map((c) => this.launch(c));
    this.timer = setInterval(() => {
      if (!this.checking) this.checking = this.check().finally(() => (this.checking = null));
    }, this.settings.checkIntervalMs);
    this.timer.unref();
  }

  workers(): Worker[] {
    return this.watched.map((w) => w.worker);
  }

  /** Every worker running, none suspected of having stopped consuming. */
  healthy(): boolean {
    return this.watched.length > 0 && this.watched.every((w) => w.worker.isRunning() && w.suspectSince === null);
  }

  private launch(consumer: WatchedConsumer): Watched {
    const { worker, closeConnection } = consumer.build();
    const w: Watched = { consumer, worker, closeConnection, inFlight: 0, lastSignOfLife: Date.now(), suspectSince: null };
    const alive = () => {
      w.lastSignOfLife = Date.now();
      w.suspectSince = null;
    };
    worker.on('active', () => {
      w.inFlight++;
      alive();
    });
    const finished = () => {
      w.inFlight = Math.max(0, w.inFlight - 1);
      alive();
    };
    worker.on('completed', finished);
    worker.on('failed', finished);
    worker.on('progress', alive);
    worker.on('drained', alive);
    return w;
  }

  /** One round of checks; returns the names of the workers recreated. Exposed for tests. */
  async check(now = Date.now()): Promise<string[]> {
    const recreated: string[] = [];
    for (const w of [...this.watched]) {
      if (this.closed) break;
      let stuck = false;
      if (!w.worker.isRunning() && !w.worker.closing) {
        // Its main loop ended without anyone closing it.
        stuck = true;
      } else if (now - w.lastSignOfLife >= this.settings.stuckAfterMs && w.inFlight < w.consumer.concurrency) {
        if (await this.jobsWaitingForIt(w)) {
          if (w.suspectSince === null) w.suspectSince = now;
          else stuck = true;
        } else {
          w.suspectSince = null;
        }
      }
      if (stuck) {
        await this.recreate(w);
        recreated.push(w.consumer.name);
      }
    }
    return recreated;
  }

  private async jobsWaitingForIt(w: Watched): Promise<boolean> {
    try {
      const q = w.consumer.queue;
      const [counts, paused, limitedMs] = await Promise.all([q.getJobCounts('wait', 'prioritized'), q.isPaused(), q.getRateLimitTtl(w.consumer.limiterMax)]);
      return (counts.wait ?? 0) + (counts.prioritized ?? 0) > 0 && !paused && !(limitedMs > 0);
    } catch {
      // Redis unreachable from here too: that is an outage, not a stuck worker.
      return false;
    }
  }

  private async recreate(w: Watched): Promise<void> {
    this.log.error({ queue: w.consumer.name, silentForMs: Date.now() - w.lastSignOfLife, inFlight: w.inFlight }, 'worker stopped consuming; recreating it');
    const old = w;
    const fresh = this.launch(w.consumer);
    this.watched[this.watched.indexOf(old)] = fresh;
    this.onRecreated(w.consumer.name);
    // Its jobs in flight, if any, are taken up again by the stalled-job check once their locks lapse.
    await this.closeWithin(old, this.settings.closeDeadlineMs);
  }

  private async closeWithin(w: Watched, deadlineMs: number): Promise<void> {
    if ((await within(w.worker.close(true).catch(() => undefined), deadlineMs)) === 'late')
      this.log.warn({ queue: w.consumer.name, deadlineMs }, 'a stuck worker did not close in time; dropped');
    w.worker.removeAllListeners();
    w.worker.on('error', () => undefined); // a dropped worker's late connection errors are not news
    await within(w.closeConnection().catch(() => undefined), deadlineMs);
  }

  /** Closes every worker, letting running jobs finish, within `deadlineMs` (close has no deadline of its own). */
  async close(deadlineMs: number): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.checking;
    const all = Promise.all(this.watched.map((w) => w.worker.close()));
    if ((await within(all, deadlineMs)) === 'late') {
      this.log.warn({ deadlineMs }, 'workers did not close in time; forcing (their jobs will be picked up again)');
      // A worker on a dead connection may not even close by force: it is let go after a second wait.
      await within(Promise.all(this.watched.map((w) => w.worker.close(true).catch(() => undefined))), deadlineMs);
    }
    await within(Promise.all(this.watched.map((w) => w.closeConnection().catch(() => undefined))), deadlineMs);
    this.watched = [];
  }
}
