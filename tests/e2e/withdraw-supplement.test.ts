/**
 * 撤件 and 补正 through the platform API, against the inv simulator and a real platform archive:
 * a withdrawn case's queued pushes never reach the department, a submission accepted after the
 * withdrawal is recorded and reported, and a returned route takes a supplement and goes back to review.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { PlatformArchive } from '../helpers/archive.js';
import { invCase } from '../fixtures/cases.js';

const MiB = 1024 * 1024;
let redis: Awaited<ReturnType<typeof startTestRedis>>;
let sim: InvSimulator;
let archive: PlatformArchive;
let platform: PlatformReceiver;
let gw: TestGateway;

beforeAll(async () => {
  redis = await startTestRedis();
  sim = new InvSimulator({
    reviewDelayMs: 200,
    decisionDelayMs: 200,
    // Cases of a project named 补正 are returned for supplement; others stay in review.
    decide: (app) => (String(app.body.project_name).includes('补正') ? 'returned' : null),
  });
  await sim.listen();
  archive = new PlatformArchive();
  await archive.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  const callbackUrl = await platform.listen();
  gw = await startTestGateway({
    redisUrl: redis.url,
    env: { GATEWAY_PLATFORM_ARCHIVE_TOKEN: archive.token },
    overrides: { platform: { defaultCallbackUrl: callbackUrl }, departments: { inv: { enabled: true, baseUrl: sim.url, concurrency: 1, retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 300 } } } },
  });
  sim.setWebhookUrl(`${gw.url}/callbacks/inv`);
});

afterAll(async () => {
  await gw?.close();
  await sim?.close();
  await archive?.close();
  await platform?.close();
  await redis?.cleanup();
});

const route = async (caseNo: string) => (await gw.ledger.get(caseNo))!.routes[0]!;
const post = (path: string, body?: unknown) => gw.call('POST', path, { token: gw.platformToken, ...(body !== undefined ? { body } : { raw: '{}', headers: { 'content-type': 'application/json' } }) });

describe('withdraw (撤件)', () => {
  it('stops the pushes of a case: queued ones never reach the department, the running one is broken off', async () => {
    const caseNo = 'WD-1';
    const mats = [await archive.material(caseNo, 'W1', 16 * MiB), await archive.material(caseNo, 'W2', 1000), await archive.material(caseNo, 'W3', 2000)];
    archive.bytesPerSecond = 4 * MiB; // the first material takes ~4 s; the others wait behind it (concurrency 1)
    try {
      expect((await post('/v1/cases', invCase(caseNo, { materials: mats }))).status).toBe(202);
      const appId = await waitFor(async () => (await route(caseNo)).receiptNo ?? undefined, 10_000, 'accepted');
      const session = await waitFor(() => [...sim.uploads.values()].find((u) => u.application_id === appId && u.material_id === 'W1' && sim.materials.held(u.upload_id).length >= 1), 15_000, 'first part of W1');
      const r = await post(`/v1/cases/${caseNo}/withdraw`);
      expect(r.status).toBe(202);
      expect(r.body).toMatchObject({ status: 'DONE', routes: [{ status: 'WITHDRAWN' }] });
      await new Promise((res) => setTimeout(res, 4000));
      expect(session.state).toBe('open'); // never completed
      expect([...sim.uploads.values()].filter((u) => u.application_id === appId).map((u) => u.material_id)).toEqual(['W1']);
      expect(sim.byMaterial.size === 0 || ![...sim.byMaterial.keys()].some((k) => k.startsWith(`${appId}/`))).toBe(true);
      const final = await route(caseNo);
      expect(final.status).toBe('WITHDRAWN');
      expect(final.materials.every((m) => m.status === 'FAILED' && m.error?.code === 'WITHDRAWN')).toBe(true);
      await waitFor(() => platform.forCase(caseNo).some((e) => e.body.status === 'WITHDRAWN'), 10_000, 'WITHDRAWN event');
    } finally {
      archive.bytesPerSecond = 0;
    }
  });

  it('a submission on the wire when the case is withdrawn is recorded and reported when the department accepts it', async () => {
    sim.o.latencyMs = 1500;
    try {
      const caseNo = 'WD-2';
      const m = await archive.material(caseNo, 'X', 1000);
      expect((await post('/v1/cases', invCase(caseNo, { materials: [m] }))).status).toBe(202);
      await waitFor(async () => (await route(caseNo)).attempts === 1, 10_000, 'submission on the wire');
      expect((await post(`/v1/cases/${caseNo}/withdraw`)).status).toBe(202);
      const r = await waitFor(async () => {
        const x = await route(caseNo);
        return x.receiptNo ? x : undefined;
      }, 10_000, 'late receipt recorded');
      expect(r.status).toBe('WITHDRAWN');
      expect(sim.accepted.get(r.key)).toBe(1);
      await waitFor(() => platform.forCase(caseNo).some((e) => e.body.status === 'WITHDRAWN' && e.body.receiptNo === r.receiptNo), 10_000, 'receipt reported');
      await new Promise((res) => setTimeout(res, 1000));
      expect([...sim.uploads.values()].some((u) => u.application_id === r.receiptNo)).toBe(false); // nothing more sent
    } finally {
      sim.o.latencyMs = 0;
    }
  });

  it('an unknown case is 404; a final case stays as it is', async () => {
    expect((await post('/v1/cases/NO-SUCH-CASE/withdraw')).body.error.code).toBe('CASE_NOT_FOUND');
    const again = await post('/v1/cases/WD-1/withdraw');
    expect(again.status).toBe(202);
    expect(again.body.routes[0].status).toBe('WITHDRAWN');
  });
});

describe('supplement (补正)', () => {
  it('a returned route takes new materials, pushes them, and goes back to review', async () => {
    const caseNo = 'SUP-1';
    const c = invCase(caseNo);
    c.project!.name = '需补正的光伏项目';
    expect((await post('/v1/cases', c)).status).toBe(202);
    const returned = await waitFor(async () => {
      const x = await route(caseNo);
      return x.status === 'RETURNED' ? x : undefined;
    }, 10_000, 'RETURNED');
    expect(returned.opinion).toBe('请补充项目用地预审意见');
    const extra = await archive.material(caseNo, 'S1', 2 * MiB + 5);
    const r = await post(`/v1/cases/${caseNo}/materials`, { department: 'inv', materials: [extra] });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.routes[0].materials).toEqual([{ id: 'S1', status: 'PENDING', supplement: true, generation: 1 }]);
    const back = await waitFor(async () => {
      const x = await route(caseNo);
      return x.status === 'IN_REVIEW' ? x : undefined;
    }, 15_000, 'back in review');
    expect(back.materials[0]).toMatchObject({ id: 'S1', status: 'DELIVERED', fileId: expect.any(String) });
    expect(sim.byMaterial.get(`${back.receiptNo}/S1`)).toMatchObject({ sha256: extra.sha256 });
    await waitFor(() => platform.forCase(caseNo).some((e) => e.body.status === 'IN_REVIEW' && e.body.seq > 3), 10_000, 'IN_REVIEW event after RETURNED');
    // The same supplement again: accepted, nothing changes.
    const repeat = await post(`/v1/cases/${caseNo}/materials`, { department: 'inv', materials: [extra] });
    expect(repeat.status).toBe(202);
    expect((await route(caseNo)).materials).toHaveLength(1);
  });

  it('refuses a route that is not returned, a bad body with paths, an unknown case or route', async () => {
    const m = await archive.material('SUP-2', 'S2', 10);
    const notReturned = await post('/v1/cases/WD-1/materials', { department: 'inv', materials: [m] });
    expect(notReturned.status).toBe(409);
    expect(notReturned.body.error.code).toBe('ROUTE_NOT_RETURNED');
    const bad = await post('/v1/cases/SUP-1/materials', { department: 'inv', materials: [{ ...m, sha256: 'xyz', size: -1 }], extra: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.map((d: { path: string }) => d.path)).toEqual(expect.arrayContaining(['materials[0].sha256', 'materials[0].size', 'extra']));
    expect((await post('/v1/cases/NOPE/materials', { department: 'inv', materials: [m] })).status).toBe(404);
    const otherRoute = await post('/v1/cases/SUP-1/materials', { department: 'tax', materials: [m] });
    expect(otherRoute.status).toBe(400);
    expect(otherRoute.body.error.details[0]).toMatchObject({ path: 'department', code: 'NO_ROUTE' });
  });
});
