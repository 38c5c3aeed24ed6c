/**
 * A three-master Redis Cluster on loopback, started by the test itself: three redis-server
 * processes in cluster mode on free ports, joined with `redis-cli --cluster create`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../gateway/embedded-redis.js';

const run = promisify(execFile);

export interface TestRedisCluster {
  nodes: EmbeddedRedis[];
  /** host:port,host:port,… — what REDIS_CLUSTER_NODES takes. */
  seeds: string;
  cleanup(): Promise<void>;
}

export async function startTestRedisCluster(size = 3): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-test-cluster-'));
  const nodes: EmbeddedRedis[] = [];
  const cleanup = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < size; i++) {
      nodes.push(
        await startEmbeddedRedis({
          dir: join(dir, `node-${i}`),
          appendfsync: 'everysec',
          extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000'],
        }),
      );
    }
    const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
    await run('redis-cli', ['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    // Every node must agree that all 16384 slots are served before clients connect.
    const deadline = Date.now() + 30_000;
    for (const n of nodes) {
      const c = new Redis(n.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
      c.on('error', () => undefined);
      await c.connect();
      try {
        for (;;) {
          const info = (await c.call('CLUSTER', 'INFO')) as string;
          if (/cluster_state:ok/.test(info) && /cluster_slots_assigned:16384/.test(info)) break;
          if (Date.now() > deadline) throw new Error(`cluster not ready on ${n.url}: ${info}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        c.disconnect();
      }
    }
    return { nodes, seeds: addrs.join(','), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
