/**
 * Every way ioredis reports a Redis that went away is recognised as "unavailable" (503 to clients,
 * never a 500): a command in flight when the server dies and one sent
 * while reconnecting. The in-flight case was once answered 500 INTERNAL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { Queues } from '../../queue/queues.js';
import { createCommandClient, isRedisUnavailable } from '../../queue/redis-client.js';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../gateway/embedded-redis.js';
import { startTestRedis } from '../helpers/redis.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let again: EmbeddedRedis | null = null;
afterAll(async () => {
  await again?.stop();
  await redis?.cleanup();
});

it('recognises the errors of a Redis killed under a command and of one still reconnecting', async () => {
  redis = await startTestRedis();
  const client = createCommandClient({ kind: 'single', url: redis.url });
  client.on('error', () => undefined);
  await client.connect();
  const inFlight = client.blpop('nothing-here', 5).then(
    () => null,
    (e: unknown) => e,
  );
  await new Promise((r) => setTimeout(r, 200));
  redis.kill();
  const err1 = await inFlight;
  expect(err1).toBeInstanceOf(Error);
  expect(isRedisUnavailable(err1), String(err1)).toBe(true);

  const err2 = await client.get('x').then(
    () => null,
    (e: unknown) => e,
  );
  expect(err2).toBeInstanceOf(Error);
  expect(isRedisUnavailable(err2), String(err2)).toBe(true);
  client.disconnect();

  // A mistake of ours or the caller's is not "unavailable".
  expect(isRedisUnavailable(new Error('WRONGTYPE Operation against a key holding the wrong kind of value'))).toBe(false);
  expect(isRedisUnavailable(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBe(false);
  expect(isRedisUnavailable(null)).toBe(false);
  await new Promise((r) => redis.child.exitCode !== null || redis.child.signalCode !== null ? r(null) : redis.child.once('exit', r));
  again = await startEmbeddedRedis({ dir: redis.dir, port: redis.port });
});

it("a connection error reaches the producers' queues without a console.error past the logger", async () => {
  const client = createCommandClient({ kind: 'single', url: redis.url });
  client.on('error', () => undefined); // as the runtime's logger does
  await client.connect();
  const queues = new Queues(client, 'gw-quiet', () => ({ attempts: 1, baseDelayMs: 1 }), { attempts: 1, baseDelayMs: 1 });
  await queues.dept('inv').waitUntilReady();
  await queues.notify.waitUntilReady();
  const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    client.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:1'));
    expect(printed).not.toHaveBeenCalled();
  } finally {
    printed.mockRestore();
    client.disconnect();
  }
});

it('a write refused by a primary just demoted (READONLY) is "unavailable", and the connection looks again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-readonly-'));
  const demoted = await startEmbeddedRedis({ dir, extraArgs: ['--replicaof', '127.0.0.1', String(redis.port)] });
  const client = createCommandClient({ kind: 'single', url: demoted.url });
  client.on('error', () => undefined);
  await client.connect();
  let reconnects = 0;
  client.on('reconnecting', () => reconnects++);
  try {
    const err = await client.set('{gw}:x', '1').then(
      () => null,
      (e: unknown) => e,
    );
    expect(String(err)).toMatch(/READONLY/);
    expect(isRedisUnavailable(err)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(reconnects).toBeGreaterThan(0);
  } finally {
    client.disconnect();
    await demoted.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
