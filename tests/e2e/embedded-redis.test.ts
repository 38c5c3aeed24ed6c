import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { startEmbeddedRedis } from '../../gateway/embedded-redis.js';

it('the embedded redis-server is durable (AOF, appendfsync always), never evicts, keeps data across restarts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-embedded-'));
  try {
    const first = await startEmbeddedRedis({ dir });
    const c = new Redis(first.url);
    const cfg = async (k: string) => ((await c.call('CONFIG', 'GET', k)) as string[])[1];
    expect(await cfg('appendonly')).toBe('yes');
    expect(await cfg('appendfsync')).toBe('always');
    expect(await cfg('maxmemory-policy')).toBe('noeviction');
    await c.set('{gw}:probe', 'kept');
    c.disconnect();
    await first.stop();

    const second = await startEmbeddedRedis({ dir });
    const c2 = new Redis(second.url);
    expect(await c2.get('{gw}:probe')).toBe('kept');
    c2.disconnect();
    await second.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
