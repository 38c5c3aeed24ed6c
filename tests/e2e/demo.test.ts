/**
 * `npm run demo` as a user runs it, on the embedded default: it starts its own redis-server
 * (AOF, appendfsync always, data in the configured dir), carries the sample cases to their final
 * statuses, and stops the redis-server when it exits.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { freePort } from '../../gateway/embedded-redis.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'gw-demo-'));

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

it('runs the sample cases to their final statuses on an embedded redis-server, then cleans up', async () => {
  const [gwPort, simPort, platformPort, siPort, taxPort, psPort] = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    DEMO_EXIT_WHEN_DONE: '1',
    GATEWAY_SERVER_PORT: String(gwPort),
    GATEWAY_DEPARTMENTS_INV_BASE_URL: `http://127.0.0.1:${simPort}`,
    GATEWAY_PLATFORM_DEFAULT_CALLBACK_URL: `http://127.0.0.1:${platformPort}/gateway-events`,
    GATEWAY_DEPARTMENTS_SI_BASE_URL: `http://127.0.0.1:${siPort}`,
    GATEWAY_DEPARTMENTS_TAX_BASE_URL: `http://127.0.0.1:${taxPort}`,
    GATEWAY_DEPARTMENTS_PS_BASE_URL: `https://127.0.0.1:${psPort}`,
    GATEWAY_DEPARTMENTS_PS_CA_FILE: join(dataDir, 'pki', 'dept-ca.pem'),
    GATEWAY_REDIS_EMBEDDED_DIR: join(dataDir, 'redis'),
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  expect(code, out).toBe(0);

  expect(out).toContain('started an embedded redis-server');
  expect(out).toMatch(/-1 inv APPROVED INV-/);
  expect(out).toMatch(/-2 inv APPROVED INV-/);
  expect(out).toMatch(/-3 inv REJECTED INV-/);
  expect(out).toMatch(/-4 inv FAILED — DEPT_PROJECT_NOT_FOUND/);
  expect(out).toMatch(/-5 640100-INV-0201 → 422 INVALID_IDENTIFIER: organisation\.uscc/);
  expect(out).toContain('→ 200 (identical repeat');
  expect(out).toMatch(/platform ← event #3 DEMO-\S+-1 inv APPROVED/);
  // Every department is reachable from the demo.
  expect(out).toMatch(/-6 si APPROVED SI/);
  expect(out).toMatch(/-7 tax APPROVED TX/);
  expect(out).toMatch(/-7 si APPROVED SI/);
  expect(out).toMatch(/-8 ps APPROVED GA/);
  expect(out).toMatch(/-9 ps FAILED — UNENCODABLE_CHARACTER: SQR\.XM/);
  // No applicant ID number in anything the demo printed, logs included.
  expect(out).not.toContain('11010519491231002X');

  // AOF under the configured dir (its settings: tests/e2e/embedded-redis.test.ts); the server is gone after exit.
  const redisUrl = /redis:\/\/127\.0\.0\.1:(\d+)/.exec(out);
  expect(redisUrl).not.toBeNull();
  expect(await portOpen(Number(redisUrl![1]))).toBe(false);
  const files = readdirSync(join(dataDir, 'redis'), { recursive: true }).map(String);
  expect(files.some((f) => f.includes('appendonly'))).toBe(true);
  // The server asked for a password, kept beside its data and never printed.
  const password = readFileSync(join(dataDir, 'redis', 'redis.password'), 'utf8').trim();
  expect(password.length).toBeGreaterThanOrEqual(32);
  expect(out).not.toContain(password);
});
