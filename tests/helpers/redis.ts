/** Every test file gets its own real redis-server on a free port, with a throw-away data dir. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../gateway/embedded-redis.js';

export async function startTestRedis(): Promise<EmbeddedRedis & { cleanup(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-test-redis-'));
  const r = await startEmbeddedRedis({ dir });
  return {
    ...r,
    async cleanup() {
      await r.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
