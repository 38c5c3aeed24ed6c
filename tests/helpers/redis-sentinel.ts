/**
 * A Redis Sentinel on loopback, started by the test itself (`redis-server <conf> --sentinel`),
 * watching one primary under a name, quick to declare it down (1 s) so a failover takes seconds.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../gateway/embedded-redis.js';

export interface TestSentinel {
  port: number;
  /** host:port — what REDIS_SENTINELS takes. */
  node: string;
  client: Redis;
  /** Where the sentinel says the primary is now. */
  primaryPort(): Promise<number>;
  stop(): Promise<void>;
}

export async function startTestSentinel(masterName: string, primaryPort: number): Promise<TestSentinel> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-test-sentinel-'));
  const port = await freePort();
  // The sentinel rewrites its configuration file as it learns: it must be its own, and writable.
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${primaryPort} 1`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 5000`,
      '',
    ].join('\n'),
  );
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined); // refused while it starts
    const up = await probe.connect().then(() => probe.ping().then(() => true), () => false);
    probe.disconnect();
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the sentinel on ${port} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const client = new Redis(port, '127.0.0.1');
  client.on('error', () => undefined);
  return {
    port,
    node: `127.0.0.1:${port}`,
    client,
    async primaryPort() {
      const [, p] = (await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string];
      return Number(p);
    },
    async stop() {
      client.disconnect();
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
