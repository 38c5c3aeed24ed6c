/**
 * Social security end to end over real HTTP: SOAP with WS-Security against the strict simulator,
 * results by polling at the configured pace, an outage, an auth failure, and 企业开办 (tax + si).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SiSimulator } from '../simulators/si/server.js';
import { TaxSimulator } from '../simulators/tax/server.js';
import { EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { sampleCaseFor } from '../fixtures/cases.js';

const LICENCE_XML =
  '<ns2:licence><ns2:licenceId>SI-L-1</ns2:licenceId><ns2:typeCode>11100000000000000X-SB</ns2:typeCode><ns2:typeName>城乡居民养老保险参保证明</ns2:typeName>' +
  '<ns2:holderName>张三</ns2:holderName><ns2:holderIdType>ID_CARD</ns2:holderIdType><ns2:holderIdNumber>11010519491231002X</ns2:holderIdNumber><ns2:issuerName>某市人社局</ns2:issuerName>' +
  '<ns2:issuerCode>11640100000000000X</ns2:issuerCode><ns2:issueDate>2026-11-24</ns2:issueDate><ns2:validFrom>2026-11-24</ns2:validFrom><ns2:validTo></ns2:validTo><ns2:fileName>cert.ofd</ns2:fileName>' +
  '<ns2:mediaType>application/ofd</ns2:mediaType><ns2:fileBase64>T0ZE</ns2:fileBase64><ns2:signature algorithm="SM2-SM3" format="RAW">U0lH</ns2:signature><ns2:certificates><ns2:cert>Q0VSVA==</ns2:cert></ns2:certificates></ns2:licence>';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let si: SiSimulator;
let tax: TaxSimulator;
let gw: TestGateway;
let platform: PlatformReceiver;

beforeAll(async () => {
  redis = await startTestRedis();
  si = new SiSimulator({ reviewDelayMs: 500, decisionDelayMs: 1500, licence: (b) => (b.businessType === 'SI0101' ? LICENCE_XML : null) });
  await si.listen();
  tax = new TaxSimulator({ reviewDelayMs: 100, decisionDelayMs: 100 });
  await tax.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  const callbackUrl = await platform.listen();
  gw = await startTestGateway({
    redisUrl: redis.url,
    overrides: {
      platform: { defaultCallbackUrl: callbackUrl },
      departments: {
        si: { enabled: true, baseUrl: si.url, pollIntervalSeconds: 1, pollMaxIntervalSeconds: 2, retry: { attempts: 6, baseDelayMs: 100, maxDelayMs: 500 } },
        tax: { enabled: true, baseUrl: tax.url },
      },
    },
  });
  tax.setWebhookUrl(`${gw.url}/callbacks/tax`);
});

afterAll(async () => {
  await gw?.close();
  await si?.close();
  await tax?.close();
  await platform?.close();
  await redis?.cleanup();
});

const doc = async (caseNo: string) => (await gw.ledger.get(caseNo))!;
async function submit(item: string, caseNo: string) {
  const r = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: sampleCaseFor(item, caseNo) });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
}

describe('si end to end', () => {
  it('accepted → in review → approved with a licence, by polling no faster than configured, then polling stops', async () => {
    await submit('640100-SI-0101', 'SI-E2E-1');
    const d = await waitFor(async () => {
      const x = await doc('SI-E2E-1');
      return x.status === 'DONE' ? x : undefined;
    }, 20_000, 'DONE');
    const r = d.routes[0]!;
    // A licence that does not verify (this one's signature and certificate are not even DER) is never
    // shown as valid: ATTENTION, with the envelope and the verification report kept.
    expect(r).toMatchObject({ status: 'ATTENTION', departmentStatus: '03', opinion: '准予参保', lastError: { code: 'LICENCE_INVALID' } });
    expect(r.licence).toMatchObject({
      envelope: { licenceId: 'SI-L-1', holder: { idNumber: '11010519491231002X' }, signature: { algorithm: 'SM2-SM3', format: 'RAW' } },
      verification: { verdict: 'INVALID', reasons: ['MALFORMED'] },
    });
    await waitFor(() => platform.forCase('SI-E2E-1').some((e) => e.body.status === 'ATTENTION'), 10_000, 'ATTENTION event');
    expect(platform.forCase('SI-E2E-1').map((e) => e.body.status)).toEqual(expect.arrayContaining(['SUBMITTED', 'IN_REVIEW', 'ATTENTION']));
    // What the department got.
    const biz = si.business.get(r.receiptNo!)!;
    expect(biz.fields).toMatchObject({ businessType: 'SI0101', person: { aac002: '11010519491231002X', aac004: '2', aac006: '19491231' }, materialCount: '0' });
    expect(si.accepted.get(r.key)).toBe(1);
    // Polls at least the configured second apart; none after the final status.
    const times = si.queries.get(r.receiptNo!)!;
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(950);
    const count = times.length;
    await new Promise((res) => setTimeout(res, 2500));
    expect(si.queries.get(r.receiptNo!)!.length).toBe(count);
    expect(si.counters.authFailures).toBe(0);
  });

  it('a field the department refuses (E1001) fails the route in its words', async () => {
    const c = sampleCaseFor('640100-SI-0201', 'SI-E1001-1');
    delete c.applicant.phone; // SI-0201 requires it: refused at intake instead
    const r = await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: c });
    expect(r.status).toBe(422);
    expect(r.body.error.details.map((x: { path: string }) => x.path)).toContain('applicant.phone');
  });

  it('down (and an HTML error page) for a while, then back: delivered once', async () => {
    si.setMode('down');
    await submit('640100-SI-0201', 'SI-DOWN-1');
    await waitFor(async () => (await doc('SI-DOWN-1')).routes[0]!.lastError?.code === 'DEPT_UNREACHABLE', 10_000, 'outage seen');
    si.setMode('500');
    await waitFor(async () => (await doc('SI-DOWN-1')).routes[0]!.lastError?.code === 'DEPT_UNAVAILABLE', 10_000, 'error page seen');
    si.setMode('normal');
    const d = await waitFor(async () => {
      const x = await doc('SI-DOWN-1');
      return x.status === 'DONE' ? x : undefined;
    }, 20_000, 'DONE after the outage');
    expect(d.routes[0]!.status).toBe('APPROVED');
    expect(si.accepted.get(d.routes[0]!.key)).toBe(1);
  });

  it('企业开办: one case, tax and si in parallel, each to its end', async () => {
    await submit('640100-QYKB-0001', 'QYKB-E2E-1');
    const d = await waitFor(async () => {
      const x = await doc('QYKB-E2E-1');
      return x.status === 'DONE' ? x : undefined;
    }, 20_000, 'DONE');
    expect(d.routes.map((r) => [r.department, r.status])).toEqual([
      ['tax', 'APPROVED'],
      ['si', 'APPROVED'],
    ]);
    const siBiz = si.business.get(d.routes[1]!.receiptNo!)!;
    expect(siBiz.fields).toMatchObject({ businessType: 'SI0102', unit: { aab004: '银川某某新能源有限公司', aab998: '91350100M000100Y43' }, items: [{ key: 'employee', value: '110101199003074477' }] });
  });
});

describe('si refuses our password', () => {
  let wrong: SiSimulator;
  let gw2: TestGateway;
  beforeAll(async () => {
    wrong = new SiSimulator({ password: 'another-password' });
    await wrong.listen();
    gw2 = await startTestGateway({ redisUrl: redis.url, ns: 'gwsiauth', overrides: { departments: { si: { enabled: true, baseUrl: wrong.url, authPauseMs: 1000 } } } });
  });
  afterAll(async () => {
    await gw2?.close();
    await wrong?.close();
  });

  it('FailedAuthentication pauses delivery, is visible, fails no case', async () => {
    expect((await gw2.call('POST', '/v1/cases', { token: gw2.platformToken, body: sampleCaseFor('640100-SI-0101', 'SI-AUTH-1') })).status).toBe(202);
    await waitFor(async () => (await gw2.ledger.get('SI-AUTH-1'))!.routes[0]!.lastError?.code === 'DEPT_AUTH_REFUSED', 10_000, 'auth fault');
    await new Promise((res) => setTimeout(res, 2500));
    const r = (await gw2.ledger.get('SI-AUTH-1'))!.routes[0]!;
    expect(r).toMatchObject({ status: 'QUEUED', lastError: { departmentCode: 'wsse:FailedAuthentication' } });
    expect(wrong.counters.submits).toBe(0);
    expect(wrong.counters.authFailures).toBeLessThanOrEqual(4);
    expect(gw2.logs.text).toContain('refused our credentials');
  });
});

describe('mapping preview for si', () => {
  it('shows the SOAP envelope, identical to what is sent but for the WS-Security values', async () => {
    const { ADMIN_TOKEN } = await import('../helpers/gateway.js');
    const p = await gw.call('POST', '/admin/v1/mappings/640100-SI-0201/preview', { token: ADMIN_TOKEN, body: sampleCaseFor('640100-SI-0201', 'SI-PREVIEW-1') });
    expect(p.status, JSON.stringify(p.body)).toBe(200);
    const req = p.body.routes[0].request;
    expect(req).toMatchObject({ method: 'POST', url: `${si.url}/services/SiBusinessService`, headers: { SOAPAction: '"urn:si:submitBusiness"' } });
    expect(req.body).toContain('<si:businessType>SI0201</si:businessType>');
    expect(req.body).toContain('&lt;digest&gt;');
    const body = (x: string) => /<soap:Body>([\s\S]*)<\/soap:Body>/.exec(x)![1];
    await submit('640100-SI-0201', 'SI-PREVIEW-1');
    const sent = await waitFor(() => si.requests.find((r) => r.includes(`<si:serialNo>${p.body.routes[0].key}</si:serialNo>`)), 10_000, 'sent');
    expect(body(sent)).toBe(body(req.body));
    const header = (x: string) => x.replace(/<soap:Body>[\s\S]*/, '').replace(/(PasswordDigest">)[^<]*/, '$1').replace(/(Base64Binary">)[^<]*/, '$1').replace(/(<wsu:Created>)[^<]*/, '$1');
    expect(header(sent)).toBe(header(req.body));
  });
});
