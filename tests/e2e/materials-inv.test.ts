/**
 * E-materials to inv over real HTTP: streamed from a real platform archive into upload sessions,
 * verified by the simulator's own SHA-256; a tampered file never completed; a missing file failed
 * with its reason; a worker SIGKILLed mid-upload resumes without re-sending held parts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { ADMIN_TOKEN, EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/platform.js';
import { PlatformArchive } from '../helpers/archive.js';
import { spawnGateway, type GatewayProcess } from '../helpers/process.js';
import { invCase } from '../fixtures/cases.js';

const MiB = 1024 * 1024;
let redis: Awaited<ReturnType<typeof startTestRedis>>;
let sim: InvSimulator;
let archive: PlatformArchive;
let gw: TestGateway;
const children: GatewayProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  sim = new InvSimulator({ reviewDelayMs: 60_000 }); // stays in review: materials are what is tested
  await sim.listen();
  archive = new PlatformArchive();
  await archive.listen();
  gw = await startTestGateway({
    redisUrl: redis.url,
    env: { GATEWAY_PLATFORM_ARCHIVE_TOKEN: archive.token },
    overrides: { departments: { inv: { enabled: true, baseUrl: sim.url, retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 300 } } } },
  });
  sim.setWebhookUrl(`${gw.url}/callbacks/inv`);
});

afterAll(async () => {
  for (const c of children) c.child.kill('SIGKILL');
  await gw?.close();
  await sim?.close();
  await archive?.close();
  await redis?.cleanup();
});

const materialsOf = async (g: TestGateway, caseNo: string) => (await g.ledger.get(caseNo))!.routes[0]!.materials;
const settled = (g: TestGateway, caseNo: string, ms = 30_000) =>
  waitFor(async () => {
    const m = await materialsOf(g, caseNo);
    return m.every((x) => x.status !== 'PENDING') ? m : undefined;
  }, ms, `${caseNo} materials settled`);

describe('inv materials', () => {
  it('three materials, one of 64 MiB, streamed and verified by the department', async () => {
    const caseNo = 'MAT-INV-1';
    const mats = [await archive.material(caseNo, 'M1', 10_000), await archive.material(caseNo, 'M2', Math.round(1.5 * MiB), 'plan.ofd', 'application/ofd'), await archive.material(caseNo, 'M3', 64 * MiB)];
    const r = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase(caseNo, { materials: mats }) });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.routes[0].materials).toEqual(mats.map((m) => ({ id: m.id, status: 'PENDING' })));
    const done = await settled(gw, caseNo);
    expect(done.map((m) => m.status)).toEqual(['DELIVERED', 'DELIVERED', 'DELIVERED']);
    const appId = (await gw.ledger.get(caseNo))!.routes[0]!.receiptNo!;
    for (const m of mats) {
      const stored = sim.byMaterial.get(`${appId}/${m.id}`);
      expect(stored, m.id).toMatchObject({ sha256: m.sha256, size: m.size });
      expect(done.find((x) => x.id === m.id)!.fileId).toBe(stored!.fileId);
    }
    // The case view shows each material's fate.
    const view = await gw.call('GET', `/v1/cases/${caseNo}`, { token: gw.platformToken });
    expect(view.body.routes[0].materials.map((m: { status: string }) => m.status)).toEqual(['DELIVERED', 'DELIVERED', 'DELIVERED']);
  });

  it('bytes that do not match the declared SHA-256 fail the material; the department never completes it', async () => {
    const caseNo = 'MAT-INV-2';
    const good = await archive.material(caseNo, 'OK', 200_000);
    const bad = await archive.material(caseNo, 'BAD', 6 * MiB);
    archive.corrupt.add(`/archive/${caseNo}/BAD`);
    expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase(caseNo, { materials: [good, bad] }) })).status).toBe(202);
    const m = await settled(gw, caseNo);
    expect(m.find((x) => x.id === 'OK')!.status).toBe('DELIVERED');
    expect(m.find((x) => x.id === 'BAD')).toMatchObject({ status: 'FAILED', error: { code: 'MATERIAL_HASH_MISMATCH' } });
    const appId = (await gw.ledger.get(caseNo))!.routes[0]!.receiptNo!;
    expect(sim.byMaterial.has(`${appId}/BAD`)).toBe(false);
    const session = [...sim.uploads.values()].find((u) => u.application_id === appId && u.material_id === 'BAD')!;
    expect(session.state).toBe('open');
    // The part that would have completed the file (the last) was held back.
    expect(sim.materials.held(session.upload_id)).toEqual([0]);
  });

  it('a file the platform archive does not have is retried, then failed with its reason', async () => {
    const caseNo = 'MAT-INV-3';
    const gone = await archive.material(caseNo, 'GONE', 1000);
    archive.missing.add(`/archive/${caseNo}/GONE`);
    expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase(caseNo, { materials: [gone] }) })).status).toBe(202);
    const [m] = await settled(gw, caseNo);
    expect(m).toMatchObject({ status: 'FAILED', error: { code: 'PLATFORM_FILE_MISSING', departmentCode: '404' } });
    expect(m!.error!.message).toMatch(/404.*gave up after 3 attempts/);
  });
});

describe('a worker killed in the middle of an upload', () => {
  let api: TestGateway;
  beforeAll(async () => {
    api = await startTestGateway({ redisUrl: redis.url, ns: 'gwmat', env: { GATEWAY_PLATFORM_ARCHIVE_TOKEN: archive.token }, overrides: { role: 'api', departments: { inv: { enabled: true, baseUrl: sim.url } } } });
  });
  afterAll(async () => {
    await api?.close();
  });
  const workerEnv = () => ({
    REDIS_URL: redis.url,
    GATEWAY_REDIS_NAMESPACE: 'gwmat',
    GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    GATEWAY_PLATFORM_EVENT_SECRET: EVENT_SECRET,
    GATEWAY_PLATFORM_ARCHIVE_TOKEN: archive.token,
    GATEWAY_DEPARTMENTS_INV_ENABLED: 'true',
    GATEWAY_DEPARTMENTS_INV_BASE_URL: sim.url,
    GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'sim-client-secret',
    GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'sim-webhook-secret',
    GATEWAY_WORKER_LOCK_DURATION_MS: '2000',
    GATEWAY_WORKER_STALLED_INTERVAL_MS: '1000',
  });

  it('resumes from the parts the department holds and never sends them again', async () => {
    const caseNo = 'MAT-KILL-1';
    const big = await archive.material(caseNo, 'BIG', 64 * MiB);
    archive.bytesPerSecond = 16 * MiB; // about 4 s for the file: time to kill the worker midway
    try {
      expect((await api.call('POST', '/v1/cases', { token: api.platformToken, body: invCase(caseNo, { materials: [big] }) })).status).toBe(202);
      const first = spawnGateway('worker', workerEnv());
      children.push(first);
      const session = await waitFor(() => [...sim.uploads.values()].find((u) => u.material_id === 'BIG' && sim.materials.held(u.upload_id).length >= 4), 30_000, 'four parts held');
      first.child.kill('SIGKILL');
      await first.exited;
      const heldAtKill = sim.materials.held(session.upload_id);
      archive.bytesPerSecond = 0;
      const second = spawnGateway('worker', workerEnv());
      children.push(second);
      const [m] = await settled(api, caseNo, 40_000);
      expect(m).toMatchObject({ status: 'DELIVERED' });
      // Same session, resumed; every part held at the kill was sent exactly once.
      expect(sim.byMaterial.get(`${session.application_id}/BIG`)).toMatchObject({ sha256: big.sha256, size: big.size });
      expect([...sim.uploads.values()].filter((u) => u.material_id === 'BIG')).toHaveLength(1);
      const puts = sim.materials.puts.get(session.upload_id)!;
      for (const i of heldAtKill) expect(puts.get(i), `part ${i + 1}`).toBe(1);
      expect(sim.counters.uploadQueries).toBeGreaterThan(0);
    } finally {
      archive.bytesPerSecond = 0;
    }
  });
});
