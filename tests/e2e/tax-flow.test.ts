/**
 * The tax department end to end over real HTTP: signed requests, signed webhooks with a replay
 * store, out-of-order and duplicate events, reconciliation, an outage and an auth failure.
 */
import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaxSimulator } from '../simulators/tax/server.js';
import { EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { sampleCaseFor } from '../fixtures/cases.js';

const ITEM = '640100-TAX-0301';
let redis: Awaited<ReturnType<typeof startTestRedis>>;
let sim: TaxSimulator;
let gw: TestGateway;
let platform: PlatformReceiver;

beforeAll(async () => {
  redis = await startTestRedis();
  sim = new TaxSimulator({ reviewDelayMs: 100, decisionDelayMs: 100, webhookRetryMs: 100 });
  await sim.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  const callbackUrl = await platform.listen();
  gw = await startTestGateway({
    redisUrl: redis.url,
    overrides: {
      platform: { defaultCallbackUrl: callbackUrl },
      departments: { tax: { enabled: true, baseUrl: sim.url, retry: { attempts: 6, baseDelayMs: 100, maxDelayMs: 500 } } },
    },
  });
  sim.setWebhookUrl(`${gw.url}/callbacks/tax`);
});

afterAll(async () => {
  await gw?.close();
  await sim?.close();
  await platform?.close();
  await redis?.cleanup();
});

const route = async (caseNo: string) => (await gw.ledger.get(caseNo))!.routes[0]!;
async function submit(caseNo: string) {
  const r = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: sampleCaseFor(ITEM, caseNo) });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
}
const until = (caseNo: string, status: string, ms = 15_000) =>
  waitFor(async () => {
    const r = await route(caseNo);
    return r.status === status ? r : undefined;
  }, ms, `${caseNo} ${status}`);

describe('tax end to end', () => {
  it('accepted → in review → approved by signed webhooks, the platform told in order', async () => {
    await submit('TAX-E2E-1');
    const r = await until('TAX-E2E-1', 'APPROVED');
    expect(r.receiptNo).toMatch(/^TX/);
    expect(r.opinion).toBe('准予登记');
    expect(sim.accepted.get(r.key)).toBe(1);
    // What the department received is the spec's request.
    const reg = sim.regs.get(r.receiptNo!)!;
    expect(reg.body).toMatchObject({ bizSerialNo: r.key, bizType: 'FPSL01', nsrsbh: '91350100M000100Y43', fddbrsfzjlx: '201', extra: { invoiceType: '增值税专用发票', monthlyQuantity: '25', generalTaxpayer: '是' } });
    const events = await waitFor(() => {
      const e = platform.forCase('TAX-E2E-1');
      return e.some((x) => x.body.status === 'APPROVED') ? e : undefined;
    }, 10_000, 'events');
    expect(events.map((e) => e.body.status)).toEqual(['SUBMITTED', 'IN_REVIEW', 'APPROVED']);
    expect(sim.counters.signatureRefused).toBe(0);
  });

  it('duplicated and reordered webhooks end in the latest status, each change told once', async () => {
    sim.o.duplicateWebhooks = true;
    sim.o.reorderWebhooks = true;
    try {
      await submit('TAX-E2E-2');
      const r = await until('TAX-E2E-2', 'APPROVED');
      await new Promise((res) => setTimeout(res, 500));
      expect((await route('TAX-E2E-2')).status).toBe('APPROVED');
      const statuses = platform.forCase('TAX-E2E-2').map((e) => e.body.status);
      expect(statuses.filter((s) => s === 'APPROVED')).toHaveLength(1);
      expect(statuses.at(-1)).toBe('APPROVED');
      expect(sim.accepted.get(r.key)).toBe(1);
    } finally {
      sim.o.duplicateWebhooks = false;
      sim.o.reorderWebhooks = false;
    }
  });

  it('a replayed webhook (same nonce) is refused with 401, a fresh one is taken', async () => {
    const raw = JSON.stringify({ applyNo: 'TX-NOT-KNOWN', bizSerialNo: 'nobody', status: 'REVIEWING', statusTime: '2026-11-24T10:00:00+08:00' });
    const r = await route('TAX-E2E-1');
    const real = JSON.stringify({ applyNo: r.receiptNo, bizSerialNo: r.key, status: 'APPROVED', statusTime: '2026-11-24T10:00:00+08:00', opinion: '准予登记' });
    const signed = (body: string, nonce: string, ts = Date.now()) => {
      const sts = `POST\n/callbacks/tax\n${ts}\n${nonce}\n${createHash('sha256').update(body).digest('hex')}`;
      return { 'content-type': 'application/json', 'x-app-id': 'gateway', 'x-timestamp': String(ts), 'x-nonce': nonce, 'x-signature': createHmac('sha256', 'sim-tax-secret').update(sts).digest('hex') };
    };
    const first = await gw.call('POST', '/callbacks/tax', { raw: real, headers: signed(real, 'ReplayNonce000000001') });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ code: '0000' });
    const again = await gw.call('POST', '/callbacks/tax', { raw: real, headers: signed(real, 'ReplayNonce000000001') });
    expect(again.status).toBe(401);
    const forged = await gw.call('POST', '/callbacks/tax', { raw: real, headers: { ...signed(real, 'ReplayNonce000000002'), 'x-signature': 'f'.repeat(64) } });
    expect(forged.status).toBe(401);
    expect(forged.body).toMatchObject({ code: '1001' });
    const stale = await gw.call('POST', '/callbacks/tax', { raw: real, headers: signed(real, 'ReplayNonce000000003', Date.now() - 400_000) });
    expect(stale.body).toMatchObject({ code: '1002' });
    // An unknown application is not recorded, so its nonce is not burnt: the department may resend it.
    const unknown = await gw.call('POST', '/callbacks/tax', { raw, headers: signed(raw, 'ReplayNonce000000004') });
    expect(unknown.status).toBe(404);
    expect(await gw.redis.exists('{gw}:replay:tax:ReplayNonce000000004')).toBe(0);
  });

  it('down for a while, then back: everything delivered once', async () => {
    sim.setMode('down');
    await submit('TAX-DOWN-1');
    await submit('TAX-DOWN-2');
    await waitFor(async () => (await route('TAX-DOWN-1')).lastError?.code === 'DEPT_UNREACHABLE', 10_000, 'outage seen');
    sim.setMode('normal');
    for (const c of ['TAX-DOWN-1', 'TAX-DOWN-2']) {
      const r = await until(c, 'APPROVED');
      expect(sim.accepted.get(r.key)).toBe(1);
    }
  });

  it('429 with Retry-After, then through', async () => {
    sim.setMode('429');
    await submit('TAX-429-1');
    await waitFor(() => sim.counters.rateLimited >= 2, 10_000, '429s');
    sim.setMode('normal');
    await until('TAX-429-1', 'APPROVED');
  });
});

describe('tax refuses our credentials', () => {
  let wrong: TaxSimulator;
  let gw2: TestGateway;
  beforeAll(async () => {
    wrong = new TaxSimulator({ appSecret: 'the-department-has-another-secret' });
    await wrong.listen();
    gw2 = await startTestGateway({ redisUrl: redis.url, ns: 'gwtaxauth', overrides: { departments: { tax: { enabled: true, baseUrl: wrong.url, authPauseMs: 1000 } } } });
  });
  afterAll(async () => {
    await gw2?.close();
    await wrong?.close();
  });

  it('stops delivering, shows the fault, fails no case', async () => {
    const r = await gw2.call('POST', '/v1/cases', { token: gw2.platformToken, body: sampleCaseFor(ITEM, 'TAX-AUTH-1') });
    expect(r.status).toBe(202);
    await waitFor(async () => (await gw2.ledger.get('TAX-AUTH-1'))!.routes[0]!.lastError?.code === 'DEPT_AUTH_REFUSED', 10_000, 'auth fault');
    await new Promise((res) => setTimeout(res, 2500));
    const route2 = (await gw2.ledger.get('TAX-AUTH-1'))!.routes[0]!;
    expect(route2).toMatchObject({ status: 'QUEUED', lastError: { departmentCode: '1001' } });
    expect(wrong.counters.submits).toBe(0);
    expect(wrong.counters.signatureRefused).toBeLessThanOrEqual(4);
    expect(gw2.logs.text).toContain('refused our credentials');
  });
});

describe('tax webhooks that never come', () => {
  let silent: TaxSimulator;
  let gw3: TestGateway;
  beforeAll(async () => {
    silent = new TaxSimulator({ reviewDelayMs: 50, decisionDelayMs: 50 });
    await silent.listen();
    gw3 = await startTestGateway({ redisUrl: redis.url, ns: 'gwtaxrec', overrides: { departments: { tax: { enabled: true, baseUrl: silent.url, reconcileAfterSeconds: 1 } } } });
  });
  afterAll(async () => {
    await gw3?.close();
    await silent?.close();
  });

  it('are made up for by a signed GET', async () => {
    expect((await gw3.call('POST', '/v1/cases', { token: gw3.platformToken, body: sampleCaseFor(ITEM, 'TAX-SILENT-1') })).status).toBe(202);
    const d = await waitFor(async () => {
      const x = await gw3.ledger.get('TAX-SILENT-1');
      return x?.status === 'DONE' ? x : undefined;
    }, 15_000, 'DONE by reconciliation');
    expect(d.routes[0]!.status).toBe('APPROVED');
    expect(silent.counters.gets).toBeGreaterThan(0);
    expect(silent.counters.signatureRefused).toBe(0);
  });
});
