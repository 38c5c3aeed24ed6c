/**
 * A worker that stops consuming while producers carry on (its Redis connections go silent: a
 * half-open TCP connection after a restart, a lost reply) is found by the watchdog and recreated
 * on fresh connections; an idle worker, a busy one and a paused queue are left alone.
 *
 * The workers reach Redis through a TCP proxy that can freeze the connections it already has
 * (they stay open and carry nothing) while new ones pass: what a worker sees when its connection
 * dies without a reset. The producers talk to Redis directly.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConsumerWatchdog, type WatchedConsumer } from '../../queue/watchdog.js';
import { startTestRedis } from '../helpers/redis.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const log = pino({ level: 'silent' });

describe('worker watchdog', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let proxy: TcpProxy;
  let producer: Redis;
  const open: Array<{ close(d: number): Promise<void> }> = [];
  const queues: Queue[] = [];

  beforeAll(async () => {
    redis = await startTestRedis();
    proxy = new TcpProxy(redis.port);
    await proxy.listen();
    producer = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  });
  afterEach(async () => {
    while (open.length) await open.pop()!.close(2000);
  });
  afterAll(async () => {
    await Promise.all(queues.map((q) => q.close()));
    producer.disconnect();
    await proxy.close();
    await redis.cleanup();
  });

  /** A queue, and a consumer of it whose worker reaches Redis through the proxy. */
  function consumer(name: string, processor: (data: { n: number }) => Promise<void>, concurrency = 2, limiter?: { max: number; duration: number }) {
    const prefix = `{wd-${name}}`;
    const queue = new Queue(name, { connection: producer as never, prefix });
    queues.push(queue);
    const built: Worker[] = [];
    const c: WatchedConsumer = {
      name,
      concurrency,
      limiterMax: limiter?.max,
      queue,
      build: () => {
        const worker = new Worker(name, async (job) => processor(job.data as { n: number }), {
          connection: { host: '127.0.0.1', port: proxy.port, maxRetriesPerRequest: null },
          prefix,
          concurrency,
          ...(limiter ? { limiter } : {}),
        });
        worker.on('error', () => undefined);
        built.push(worker);
        return { worker, closeConnection: async () => undefined };
      },
    };
    return { queue, c, built };
  }

  async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string) {
    const deadline = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('recreates a worker whose connections went silent, and the waiting jobs are done', async () => {
    const done = new Set<number>();
    const { queue, c, built } = consumer('silent', async ({ n }) => void done.add(n));
    const recreated: string[] = [];
    const dog = new ConsumerWatchdog([c], { checkIntervalMs: 200, stuckAfterMs: 1000, closeDeadlineMs: 1000 }, log, (name) => recreated.push(name));
    open.push(dog);
    dog.start();

    await queue.add('j', { n: 1 });
    await until(() => done.has(1), 10_000, 'the first job');
    expect(dog.healthy()).toBe(true);

    expect(proxy.freeze()).toBeGreaterThan(0);
    await queue.add('j', { n: 2 });
    await queue.add('j', { n: 3 });
    // The old worker cannot see them; nothing happens until the watchdog steps in.
    await new Promise((r) => setTimeout(r, 500));
    expect(done.has(2)).toBe(false);
    expect(built[0]!.isRunning()).toBe(true); // it still says it runs: isRunning() alone proves nothing

    await until(() => done.has(2) && done.has(3), 15_000, 'the jobs after the freeze');
    expect(recreated).toEqual(['silent']);
    expect(built).toHaveLength(2);
    await until(() => dog.healthy(), 5000, 'healthy again');
  });

  it('leaves alone an idle worker, a busy one, the worker of a paused queue and one held back by its rate limit', async () => {
    const idle = consumer('idle', async () => undefined);
    // one job per 4 s: after the first, the rest wait on the limiter, longer than stuckAfterMs.
    const limited = consumer('limited', async () => undefined, 2, { max: 1, duration: 4000 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const busy = consumer('busy', async () => gate, 1);
    const paused = consumer('paused', async () => undefined);
    const recreated: string[] = [];
    const dog = new ConsumerWatchdog([idle.c, busy.c, paused.c, limited.c], { checkIntervalMs: 100, stuckAfterMs: 300, closeDeadlineMs: 1000 }, log, (name) => recreated.push(name));
    open.push(dog);
    dog.start();

    // busy: one slot, taken by a long job, with more waiting behind it.
    await busy.queue.add('j', { n: 1 });
    await until(async () => (await busy.queue.getJobCounts('active')).active === 1, 5000, 'the busy job');
    await busy.queue.add('j', { n: 2 });
    // paused: paused by ops, with jobs waiting.
    await paused.queue.pause();
    await paused.queue.add('j', { n: 1 });
    // limited: the first job spends the limit; the other two wait for it.
    await limited.queue.addBulk([1, 2, 3].map((n) => ({ name: 'j', data: { n } })));
    await until(async () => (await limited.queue.getJobCounts('completed')).completed === 1, 5000, 'the first limited job');

    await new Promise((r) => setTimeout(r, 1500)); // five times stuckAfterMs
    expect((await limited.queue.getJobCounts('wait')).wait).toBe(2); // still held back, and waiting
    for (const q of [idle, busy, paused, limited]) expect(q.built).toHaveLength(1);
    expect(recreated).toEqual([]);
    expect(dog.healthy()).toBe(true);

    release();
    await paused.queue.resume();
    await until(async () => (await paused.queue.getJobCounts('completed')).completed === 1 && (await busy.queue.getJobCounts('completed')).completed === 2, 10_000, 'jobs done');
    expect(recreated).toEqual([]);
  });
});
