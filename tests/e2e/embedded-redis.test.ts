import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { embeddedPassword, PASSWORD_FILE, startEmbeddedRedis } from '../../gateway/embedded-redis.js';

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

it('the embedded redis-server does not outlive a gateway that exits without stopping it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-embedded-'));
  try {
    const { spawnSync } = await import('node:child_process');
    const script = `import { startEmbeddedRedis } from './gateway/embedded-redis.ts';
      const r = await startEmbeddedRedis({ dir: ${JSON.stringify(dir)} });
      console.log(r.port);
      process.exit(3);`;
    const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url).pathname, encoding: 'utf8' });
    expect(res.status, res.stderr).toBe(3);
    const port = Number(res.stdout.trim());
    expect(port).toBeGreaterThan(0);
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    let reachable = true;
    for (let i = 0; i < 40 && reachable; i++) {
      reachable = await probe.connect().then(() => true, () => false);
      probe.disconnect();
      if (reachable) await new Promise((r) => setTimeout(r, 100));
    }
    expect(reachable).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("the product's embedded redis-server asks every client for a password, made once and kept in its folder for this user alone, never on its command line", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-embedded-'));
  try {
    const password = embeddedPassword(dir);
    expect(embeddedPassword(dir)).toBe(password); // kept, not made again
    expect(statSync(join(dir, PASSWORD_FILE)).mode & 0o777).toBe(0o600);

    const first = await startEmbeddedRedis({ dir, password });
    expect(statSync(dir).mode & 0o777).toBe(0o700); // the AOF holds personal data
    expect(readFileSync(`/proc/${first.child.pid}/cmdline`, 'utf8')).not.toContain(password);
    // Any other local user, without the password: turned away.
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(first.port, '127.0.0.1', () => s.write('GET {gw}:probe\r\n'));
      s.once('data', (d) => (s.destroy(), resolve(d.toString())));
      s.once('error', reject);
    });
    expect(answer).toMatch(/^-NOAUTH/);
    const c = new Redis(first.url);
    await c.set('{gw}:probe', 'kept');
    c.disconnect();
    await first.stop();

    // A restart uses the same password and finds the data.
    const second = await startEmbeddedRedis({ dir, password: embeddedPassword(dir) });
    const c2 = new Redis(second.url);
    expect(await c2.get('{gw}:probe')).toBe('kept');
    c2.disconnect();
    await second.stop();

    await expect(startEmbeddedRedis({ dir, password: 'has space' })).rejects.toThrow(/printable ASCII/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
