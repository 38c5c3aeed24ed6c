/**
 * E-materials to si (SOAP Base64 chunks + queryUpload), ps (GBK CL_SC chunks over mutual TLS) and
 * tax (one signed streamed PUT of at most 50 MiB), through the real simulators, each verifying with
 * its own SHA-256: three materials with a 64 MiB one, a tampered file never completed, a missing
 * file, and a worker SIGKILLed mid-upload resuming without re-sending what the department holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SiSimulator } from '../simulators/si/server.js';
import { TaxSimulator } from '../simulators/tax/server.js';
import { PsSimulator } from '../simulators/ps/server.js';
import type { MaterialStore } from '../simulators/material-store.js';
import { ADMIN_TOKEN, EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/platform.js';
import { PlatformArchive } from '../helpers/archive.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { spawnGateway, type GatewayProcess } from '../helpers/process.js';
import { sampleCaseFor } from '../fixtures/cases.js';
import type { DepartmentId, MaterialRef } from '../../model/case.js';

const MiB = 1024 * 1024;
let redis: Awaited<ReturnType<typeof startTestRedis>>;
let archive: PlatformArchive;
let pki: TestPki;
let si: SiSimulator;
let tax: TaxSimulator;
let ps: PsSimulator;
let gw: TestGateway;
const children: GatewayProcess[] = [];

const ITEM: Record<string, string> = { si: '640100-SI-0101', tax: '640100-TAX-0301', ps: '640100-PS-0301' };
const store = (d: string): MaterialStore => (d === 'si' ? si.materials : d === 'tax' ? tax.materials : ps.materials);

function deptConfig() {
  const slow = { pollIntervalSeconds: 30, pollMaxIntervalSeconds: 60, retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 300 } };
  return {
    si: { enabled: true, baseUrl: si.url, ...slow },
    tax: { enabled: true, baseUrl: tax.url, ...slow },
    ps: { enabled: true, baseUrl: ps.url, caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile, ...slow },
  };
}

beforeAll(async () => {
  redis = await startTestRedis();
  archive = new PlatformArchive();
  await archive.listen();
  pki = makeTestPki();
  // Decisions far off: the routes stay in review while their materials are pushed.
  si = new SiSimulator({ reviewDelayMs: 600_000 });
  await si.listen();
  tax = new TaxSimulator({ reviewDelayMs: 600_000 });
  await tax.listen();
  ps = new PsSimulator({ key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, reviewDelayMs: 600_000 });
  await ps.listen();
  gw = await startTestGateway({ redisUrl: redis.url, env: { GATEWAY_PLATFORM_ARCHIVE_TOKEN: archive.token }, overrides: { departments: deptConfig() } });
});

afterAll(async () => {
  for (const c of children) c.child.kill('SIGKILL');
  await gw?.close();
  await Promise.all([si?.close(), tax?.close(), ps?.close(), archive?.close()]);
  await redis?.cleanup();
  pki?.cleanup();
});

async function submit(g: TestGateway, dept: string, caseNo: string, materials: MaterialRef[]) {
  const r = await g.call('POST', '/v1/cases', { token: g.platformToken, body: { ...sampleCaseFor(ITEM[dept]!, caseNo), materials } });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
}
const settled = (g: TestGateway, caseNo: string, ms = 60_000) =>
  waitFor(async () => {
    const d = await g.ledger.get(caseNo);
    const r = d?.routes[0];
    return r?.receiptNo && r.materials.every((m) => m.status !== 'PENDING') ? r : undefined;
  }, ms, `${caseNo} materials settled`);

describe.each(['si', 'ps', 'tax'] as DepartmentId[])('%s materials', (dept) => {
  it('three materials with a 64 MiB one, each verified by the department (tax: over 50 MiB refused at once)', async () => {
    const caseNo = `MAT-${dept}-1`;
    const mats = [await archive.material(caseNo, 'A', 1000), await archive.material(caseNo, 'B', 3 * MiB + 17, 'b.ofd', 'application/ofd'), await archive.material(caseNo, 'C', 64 * MiB)];
    if (dept === 'tax') mats.push(await archive.material(caseNo, 'D', 40 * MiB));
    await submit(gw, dept, caseNo, mats);
    const r = await settled(gw, caseNo);
    for (const m of mats) {
      const state = r.materials.find((x) => x.id === m.id)!;
      if (dept === 'tax' && m.id === 'C') {
        expect(state).toMatchObject({ status: 'FAILED', error: { code: 'MATERIAL_TOO_LARGE' } });
        expect(state.error!.message).toContain('50 MiB');
        expect(archive.downloads.get(`/archive/${caseNo}/C`) ?? 0).toBe(0); // refused before a byte moved
        continue;
      }
      expect(state.status, m.id).toBe('DELIVERED');
      expect(store(dept).files.get(`${r.receiptNo}/${m.id}`), m.id).toMatchObject({ sha256: m.sha256, size: m.size });
    }
  });

  it('a file whose bytes do not match the declared hash fails, and the department never completes it', async () => {
    const caseNo = `MAT-${dept}-2`;
    const bad = await archive.material(caseNo, 'BAD', 5 * MiB + 3);
    archive.corrupt.add(`/archive/${caseNo}/BAD`);
    await submit(gw, dept, caseNo, [bad]);
    const r = await settled(gw, caseNo);
    expect(r.materials[0]).toMatchObject({ status: 'FAILED', error: { code: 'MATERIAL_HASH_MISMATCH' } });
    const key = `${r.receiptNo}/BAD`;
    expect(store(dept).files.has(key)).toBe(false);
    if (dept !== 'tax') {
      const chunks = dept === 'si' ? 6 : 11;
      expect(store(dept).held(key)).not.toContain(chunks - 1); // the completing chunk was held back
    }
  });

  it('a file missing from the platform archive is retried, then failed with its reason', async () => {
    const caseNo = `MAT-${dept}-3`;
    const gone = await archive.material(caseNo, 'GONE', 2000);
    archive.missing.add(`/archive/${caseNo}/GONE`);
    await submit(gw, dept, caseNo, [gone]);
    const r = await settled(gw, caseNo);
    expect(r.materials[0]).toMatchObject({ status: 'FAILED', error: { code: 'PLATFORM_FILE_MISSING' } });
    expect(archive.downloads.get(`/archive/${caseNo}/GONE`) ?? 0).toBe(0);
  });
});

describe('a worker killed mid-upload', () => {
  let api: TestGateway;
  beforeAll(async () => {
    api = await startTestGateway({ redisUrl: redis.url, ns: 'gwmat2', env: { GATEWAY_PLATFORM_ARCHIVE_TOKEN: archive.token }, overrides: { role: 'api', departments: deptConfig() } });
  });
  afterAll(async () => {
    await api?.close();
  });
  const env = (): Record<string, string> => ({
    REDIS_URL: redis.url,
    GATEWAY_REDIS_NAMESPACE: 'gwmat2',
    GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    GATEWAY_PLATFORM_EVENT_SECRET: EVENT_SECRET,
    GATEWAY_PLATFORM_ARCHIVE_TOKEN: archive.token,
    GATEWAY_WORKER_LOCK_DURATION_MS: '2000',
    GATEWAY_WORKER_STALLED_INTERVAL_MS: '1000',
    GATEWAY_DEPARTMENTS_SI_ENABLED: 'true',
    GATEWAY_DEPARTMENTS_SI_BASE_URL: si.url,
    GATEWAY_DEPARTMENTS_SI_PASSWORD: 'sim-si-password',
    GATEWAY_DEPARTMENTS_SI_POLL_INTERVAL_SECONDS: '30',
    GATEWAY_DEPARTMENTS_PS_ENABLED: 'true',
    GATEWAY_DEPARTMENTS_PS_BASE_URL: ps.url,
    GATEWAY_DEPARTMENTS_PS_CA_FILE: pki.caFile,
    GATEWAY_DEPARTMENTS_PS_CERT_FILE: pki.clientCertFile,
    GATEWAY_DEPARTMENTS_PS_KEY_FILE: pki.clientKeyFile,
    GATEWAY_DEPARTMENTS_PS_POLL_INTERVAL_SECONDS: '30',
    GATEWAY_DEPARTMENTS_TAX_ENABLED: 'true',
    GATEWAY_DEPARTMENTS_TAX_BASE_URL: tax.url,
    GATEWAY_DEPARTMENTS_TAX_APP_SECRET: 'sim-tax-secret',
  });

  it.each(['si', 'ps'] as DepartmentId[])('%s: resumes from what the department holds, never sending a held chunk again', async (dept) => {
    const caseNo = `MAT-KILL-${dept}`;
    const big = await archive.material(caseNo, 'BIG', 32 * MiB);
    archive.bytesPerSecond = 8 * MiB;
    try {
      await submit(api, dept, caseNo, [big]);
      const first = spawnGateway('worker', env());
      children.push(first);
      const receipt = await waitFor(async () => (await api.ledger.get(caseNo))?.routes[0]?.receiptNo ?? undefined, 20_000, 'accepted');
      const key = `${receipt}/BIG`;
      await waitFor(() => store(dept).held(key).length >= 6, 30_000, 'six chunks held');
      first.child.kill('SIGKILL');
      await first.exited;
      const heldAtKill = store(dept).held(key);
      archive.bytesPerSecond = 0;
      const second = spawnGateway('worker', env());
      children.push(second);
      const r = await settled(api, caseNo, 60_000);
      expect(r.materials[0]!.status).toBe('DELIVERED');
      expect(store(dept).files.get(key)).toMatchObject({ sha256: big.sha256, size: big.size });
      const puts = store(dept).puts.get(key)!;
      // Chunks held when the worker died were not sent again, except perhaps the one in flight then.
      const resent = heldAtKill.filter((i) => (puts.get(i) ?? 0) > 1);
      expect(resent.length, `re-sent chunks ${resent.join(',')}`).toBeLessThanOrEqual(1);
      second.child.kill('SIGTERM');
      await second.exited;
    } finally {
      archive.bytesPerSecond = 0;
    }
  });
});

describe('a withdrawn case', () => {
  let g: TestGateway;
  beforeAll(async () => {
    const one = (c: Record<string, unknown>) => ({ ...c, concurrency: 1 });
    const d = deptConfig();
    g = await startTestGateway({ redisUrl: redis.url, ns: 'gwwd', env: { GATEWAY_PLATFORM_ARCHIVE_TOKEN: archive.token }, overrides: { departments: { si: one(d.si), tax: one(d.tax), ps: one(d.ps) } } });
  });
  afterAll(async () => {
    await g?.close();
  });

  it.each(['si', 'ps', 'tax'] as DepartmentId[])('%s: queued pushes never reach the department, the running one never completes', async (dept) => {
    const caseNo = `MAT-WD-${dept}`;
    const first = await archive.material(caseNo, 'FIRST', 8 * MiB);
    const queued = await archive.material(caseNo, 'QUEUED', 1000);
    archive.bytesPerSecond = 2 * MiB; // ~4 s for the first: the second waits behind it (concurrency 1)
    try {
      await submit(g, dept, caseNo, [first, queued]);
      await waitFor(() => (archive.downloads.get(`/archive/${caseNo}/FIRST`) ?? 0) > 0, 20_000, 'first push running');
      await new Promise((res) => setTimeout(res, 800));
      expect((await g.call('POST', `/v1/cases/${caseNo}/withdraw`, { token: g.platformToken, raw: '{}', headers: { 'content-type': 'application/json' } })).status).toBe(202);
      await new Promise((res) => setTimeout(res, 5000));
      const r = (await g.ledger.get(caseNo))!.routes[0]!;
      expect(r.status).toBe('WITHDRAWN');
      expect(store(dept).files.has(`${r.receiptNo}/FIRST`)).toBe(false);
      expect(store(dept).files.has(`${r.receiptNo}/QUEUED`)).toBe(false);
      expect(store(dept).held(`${r.receiptNo}/QUEUED`)).toEqual([]);
      expect(archive.downloads.get(`/archive/${caseNo}/QUEUED`) ?? 0).toBe(0);
    } finally {
      archive.bytesPerSecond = 0;
    }
  });
});
