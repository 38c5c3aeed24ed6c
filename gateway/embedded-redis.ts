/**
 * The embedded default: with no REDIS_URL the gateway runs its own private redis-server child,
 * durable (AOF, appendfsync always) with its data under var/redis/, and stops it on exit.
 * Tests use the same launcher on a free port with a throw-away directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';

export interface EmbeddedRedis {
  url: string;
  port: number;
  dir: string;
  child: ChildProcess;
  stop(): Promise<void>;
  /** SIGKILL, for crash tests. */
  kill(): void;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export interface EmbeddedOptions {
  dir: string;
  port?: number;
  binary?: string;
  /** 'always' for the product; tests may relax it for speed where durability is not under test. */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** More redis-server settings (tests start Cluster nodes with them). */
  extraArgs?: string[];
  /** Required of every client (`requirepass`): the product's server holds personal data on a shared host. */
  password?: string;
}

/** The password file of an embedded server's data folder: readable by this user only. */
export const PASSWORD_FILE = 'redis.password';

/**
 * The embedded server's password: made once, kept in the data folder (mode 600) so it lasts across
 * restarts and an operator with access to the folder can connect (`redis-cli -a "$(cat …)"`).
 */
export function embeddedPassword(dir: string): string {
  const file = join(resolve(dir), PASSWORD_FILE);
  mkdirSync(resolve(dir), { recursive: true, mode: 0o700 });
  try {
    const kept = readFileSync(file, 'utf8').trim(); // an operator may have put their own there
    if (kept) return kept;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const made = randomBytes(24).toString('base64url');
  writeFileSync(file, `${made}\n`, { mode: 0o600 });
  return made;
}

export async function startEmbeddedRedis(opts: EmbeddedOptions): Promise<EmbeddedRedis> {
  if (opts.password !== undefined && !/^[\x21-\x7e]{8,512}$/.test(opts.password))
    throw new Error('the embedded redis-server password must be 8 to 512 printable ASCII characters, no spaces');
  const dir = resolve(opts.dir);
  // The AOF holds cases, personal data: the folder is this user's alone.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    chmodSync(dir, 0o700);
  } catch {
    // a folder owned by someone else stays as its owner set it
  }
  const port = opts.port ?? (await freePort());
  const args = [
    '--bind', '127.0.0.1',
    '--port', String(port),
    '--dir', dir,
    '--appendonly', 'yes',
    '--appendfsync', opts.appendfsync ?? 'always',
    '--save', '',
    '--maxmemory-policy', 'noeviction',
    '--protected-mode', 'yes',
    '--daemonize', 'no',
    '--logfile', 'redis.log',
    ...(opts.extraArgs ?? []),
  ];
  // The password goes in as configuration read from stdin (`redis-server -`), never as an argument
  // that every user of the host can read in the process list.
  const child = spawn(opts.binary ?? 'redis-server', opts.password === undefined ? args : ['-', ...args], { stdio: [opts.password === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
  if (opts.password !== undefined) {
    child.stdin!.on('error', () => undefined); // a server that failed to start is reported below
    child.stdin!.end(`requirepass ${JSON.stringify(opts.password)}\n`);
  }
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const spawnError = new Promise<never>((_, rej) => {
    child.once('error', (e) => rej(new Error(`cannot start ${opts.binary ?? 'redis-server'}: ${e.message}`)));
    child.once('exit', (code) => rej(new Error(`redis-server exited with ${code}: ${stderr.trim()} (see ${dir}/redis.log)`)));
  });
  spawnError.catch(() => undefined);
  const url = opts.password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(opts.password)}@127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    probe.on('error', () => undefined); // refused while the server starts: expected
    try {
      await Promise.race([probe.connect().then(() => probe.ping()), spawnError]);
      // Loading the AOF answers LOADING; wait until the data is there.
      const info = await probe.info('persistence');
      if (/loading:0/.test(info)) break;
    } catch (e) {
      if (child.exitCode !== null || (e as Error).message.startsWith('redis-server exited') || (e as Error).message.startsWith('cannot start')) {
        probe.disconnect();
        throw e;
      }
    } finally {
      probe.disconnect();
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on 127.0.0.1:${port} within 20 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
  // If this process exits without stop() (a failed start-up, process.exit), the server goes too:
  // SIGTERM makes redis-server flush its AOF and exit cleanly.
  const onExit = () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.once('exit', onExit);
  void exited.then(() => process.off('exit', onExit));
  return {
    url,
    port,
    dir,
    child,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
    },
    kill() {
      child.kill('SIGKILL');
    },
  };
}
