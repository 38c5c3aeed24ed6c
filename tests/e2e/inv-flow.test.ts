/**
 * The whole life of an inv case over real HTTP: platform → gateway → real Redis → BullMQ worker →
 * inv simulator → signed webhook → gateway → signed events to the platform's callback server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { startTestGateway, EVENT_SECRET, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { invCase, SAMPLE_ID } from '../fixtures/cases.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let sim: InvSimulator;
let gw: TestGateway;
let platform: PlatformReceiver;
let callbackUrl: string;

beforeAll(async () => {
  redis = await startTestRedis();
  sim = new InvSimulator({ reviewDelayMs: 100, decisionDelayMs: 150 });
  await sim.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  callbackUrl = await platform.listen();
  gw = await startTestGateway({
    redisUrl: redis.url,
    overrides: { departments: { inv: { enabled: true, baseUrl: sim.url, retry: { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000 } } } },
  });
  sim.setWebhookUrl(`${gw.url}/callbacks/inv`);
});

afterAll(async () => {
  await gw?.close();
  await sim?.close();
  await platform?.close();
  await redis?.cleanup();
});

describe('an inv case end to end', () => {
  it('is accepted, submitted, reviewed and approved, and the platform hears every step in order, signed', async () => {
    const c = { ...invCase('E2E-INV-0001'), callbackUrl };
    const res = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: c });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ caseNo: 'E2E-INV-0001', status: 'IN_PROGRESS', mappingVersion: 1 });
    expect(res.body.routes).toEqual([expect.objectContaining({ department: 'inv', status: 'QUEUED', receiptNo: null })]);

    const done = await waitFor(async () => {
      const v = await gw.call('GET', '/v1/cases/E2E-INV-0001', { token: gw.platformToken });
      return v.body.status === 'DONE' ? v.body : undefined;
    }, 20_000, 'case DONE');
    expect(done.routes[0]).toMatchObject({ department: 'inv', status: 'APPROVED', opinion: '同意' });
    expect(done.routes[0].receiptNo).toMatch(/^INV-/);

    const events = await waitFor(() => {
      const e = platform.forCase('E2E-INV-0001');
      return e.some((x) => x.body.status === 'APPROVED') ? e : undefined;
    }, 20_000, 'APPROVED event');
    expect(events.every((e) => e.signatureOk)).toBe(true);
    const seqs = events.map((e) => e.body.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(seqs[0]).toBe(1);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(events.map((e) => e.body.status)).toEqual(['SUBMITTED', 'IN_REVIEW', 'APPROVED']);

    // The department received the mapping's translation, 元 → 万元 exactly.
    const app = [...sim.apps.values()].find((a) => a.application_id === done.routes[0].receiptNo)!;
    expect(app.body.total_investment_wan).toBe('12345.6789');
    expect(app.body.matter_code).toBe('INV-HZ-001');
    expect(sim.accepted.get(app.request_id)).toBe(1);
  });

  it('answers 200 with the same view for an identical repeat, and 409 for a different body', async () => {
    const c = invCase('E2E-INV-0002');
    expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: c })).status).toBe(202);
    // Same body, keys in another order.
    const reordered = Object.fromEntries(Object.entries(c).reverse());
    const again = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: reordered });
    expect(again.status).toBe(200);
    expect(again.body.caseNo).toBe('E2E-INV-0002');
    const other = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: { ...c, itemName: '另一个名称' } });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('CASE_CONFLICT');
  });

  it('fails a route for good with the department’s own words when the project is unknown', async () => {
    sim.o.unknownProjects.add('2019-640100-47-01-099999');
    const c = invCase('E2E-INV-0003', { project: { ...invCase('x').project!, code: '2019-640100-47-01-099999' } });
    expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: c })).status).toBe(202);
    const v = await waitFor(async () => {
      const r = await gw.call('GET', '/v1/cases/E2E-INV-0003', { token: gw.platformToken });
      return r.body.routes[0].status === 'FAILED' ? r.body : undefined;
    });
    expect(v.status).toBe('DONE');
    expect(v.routes[0].lastError).toMatchObject({ code: 'DEPT_PROJECT_NOT_FOUND', departmentCode: 'PROJECT_NOT_FOUND' });
    expect(v.routes[0].attempts).toBe(1);
  });

  it('lists cases newest first with a cursor and filters', async () => {
    const page1 = await gw.call('GET', '/v1/cases?limit=2', { token: gw.platformToken });
    expect(page1.status).toBe(200);
    expect(page1.body.items).toHaveLength(2);
    expect(page1.body.items[0].caseNo).toBe('E2E-INV-0003');
    const page2 = await gw.call('GET', `/v1/cases?limit=2&cursor=${page1.body.nextCursor}`, { token: gw.platformToken });
    expect(page2.body.items.map((x: any) => x.caseNo)).toEqual(['E2E-INV-0001']);
    expect(page2.body.nextCursor).toBeNull();
    const failed = await gw.call('GET', '/v1/cases?status=FAILED&department=inv', { token: gw.platformToken });
    expect(failed.body.items.map((x: any) => x.caseNo)).toEqual(['E2E-INV-0003']);
    const bad = await gw.call('GET', '/v1/cases?status=NOPE&limit=0', { token: gw.platformToken });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.map((d: any) => d.path).sort()).toEqual(['limit', 'status']);
  });

  it('never writes the applicant’s ID number, name or phone to the logs', () => {
    expect(gw.logs.lines.length).toBeGreaterThan(20);
    expect(gw.logs.text).not.toContain(SAMPLE_ID);
    expect(gw.logs.text).not.toContain('张三');
    expect(gw.logs.text).not.toContain('13800000000');
    expect(gw.logs.text).not.toContain('sim-client-secret');
    // …while the lines that matter name the case, the department and the job.
    expect(gw.logs.parsed().some((l) => l.caseNo === 'E2E-INV-0001' && l.department === 'inv' && typeof l.jobId === 'string')).toBe(true);
  });
});
