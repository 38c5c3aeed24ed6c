/**
 * Licences end to end: the trust store changed through the admin API (anchors, CRLs — audited,
 * seen by another process), POST /v1/licences/verify, and department approvals that become
 * APPROVED only with a VALID licence, ATTENTION otherwise, the platform told with the report.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvSimulator } from '../simulators/inv/server.js';
import { ADMIN_TOKEN, EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { PlatformReceiver, waitFor } from '../helpers/platform.js';
import { LicenceLab } from '../helpers/licences.js';
import { invCase } from '../fixtures/cases.js';
import type { Envelope } from '../../certs/verify.js';

const ISSUER = '11640000MB0000000X';
let redis: Awaited<ReturnType<typeof startTestRedis>>;
let lab: LicenceLab;
let sim: InvSimulator;
let platform: PlatformReceiver;
let gw: TestGateway;
let other: TestGateway;
/** What the department attaches to its next approval. */
let nextLicence: Envelope | null = null;

beforeAll(async () => {
  redis = await startTestRedis();
  lab = new LicenceLab();
  lab.chain('rsa');
  lab.chain('ec');
  sim = new InvSimulator({ reviewDelayMs: 100, decisionDelayMs: 100, licence: () => nextLicence });
  await sim.listen();
  platform = new PlatformReceiver(EVENT_SECRET);
  const callbackUrl = await platform.listen();
  gw = await startTestGateway({ redisUrl: redis.url, overrides: { platform: { defaultCallbackUrl: callbackUrl }, certs: { reloadIntervalMs: 200 }, departments: { inv: { enabled: true, baseUrl: sim.url } } } });
  other = await startTestGateway({ redisUrl: redis.url, overrides: { role: 'api', certs: { reloadIntervalMs: 200 } } });
  sim.setWebhookUrl(`${gw.url}/callbacks/inv`);
}, 120_000);

afterAll(async () => {
  await other?.close();
  await gw?.close();
  await sim?.close();
  await platform?.close();
  await redis?.cleanup();
  lab?.cleanup();
});

const admin = (method: string, path: string, body?: unknown) => gw.call(method, path, { token: ADMIN_TOKEN, ...(body !== undefined ? { body } : {}) });
const verifyOn = (g: TestGateway, e: unknown) => g.call('POST', '/v1/licences/verify', { token: g.platformToken, body: e });

describe('trust store through the admin API', () => {
  it('refuses what is not a CA, then adds an anchor; every process sees it', async () => {
    const e = lab.licence('rsa', 'rsa-signer', { extraCerts: ['rsa-int'] });
    expect((await verifyOn(other, e)).body).toMatchObject({ verdict: 'INVALID', reasons: ['UNTRUSTED_CHAIN'] });
    const notCa = await admin('POST', '/admin/v1/trust/anchors', { pem: lab.pem('rsa-signer.pem'), issuerCodes: [ISSUER], departments: ['inv'] });
    expect(notCa.status).toBe(400);
    expect(notCa.body.error.details[0]).toMatchObject({ path: 'pem', code: 'NOT_A_CA' });
    const platformTry = await gw.call('POST', '/admin/v1/trust/anchors', { token: gw.platformToken, body: { pem: lab.pem('rsa-root.pem') } });
    expect(platformTry.status).toBe(403);
    for (const k of ['rsa', 'ec']) {
      const added = await admin('POST', '/admin/v1/trust/anchors', { pem: lab.pem(`${k}-root.pem`), issuerCodes: [ISSUER], departments: ['inv'] });
      expect(added.status, JSON.stringify(added.body)).toBe(201);
      expect(added.body).toMatchObject({ subject: expect.stringContaining(`${k}-root`), issuerCodes: [ISSUER], departments: ['inv'] });
    }
    expect((await admin('GET', '/admin/v1/trust/anchors')).body.items).toHaveLength(2);
    // The other process, without restart, within 5 s.
    await waitFor(async () => (await verifyOn(other, e)).body.verdict === 'VALID', 5_000, 'anchor seen by the other process');
    const audit = (await gw.redis.xrange('{gw}:audit', '-', '+')) as [string, string[]][];
    expect(audit.some(([, f]) => f.includes('trust.anchor.add'))).toBe(true);
  });

  it('POST /v1/licences/verify answers the report, whatever its verdict; 400 for what is not an envelope', async () => {
    const e = lab.licence('ec', 'ec-signer', { extraCerts: ['ec-int'] });
    expect((await verifyOn(gw, e)).body).toMatchObject({ verdict: 'VALID', reasons: [], signer: { subject: expect.stringContaining('ec-signer') }, anchor: expect.stringContaining('ec-root') });
    const tampered = await verifyOn(gw, { ...e, validTo: '2099-01-01' });
    expect(tampered.status).toBe(200);
    expect(tampered.body).toMatchObject({ verdict: 'INVALID', reasons: ['SIGNATURE_MISMATCH'] });
    const bad = await verifyOn(gw, { hello: 'world' });
    expect(bad.status).toBe(400);
    // A licence presented at the window carries its file: 2 MiB of it is over the case body limit, and taken.
    const big = await verifyOn(gw, lab.licence('ec', 'ec-signer', { extraCerts: ['ec-int'], file: Buffer.alloc(2 * 1024 * 1024, 5) }));
    expect(big.status, JSON.stringify(big.body)).toBe(200);
    expect(big.body.verdict).toBe('VALID');
  });

  it('a CRL from a known intermediate revokes; one from an unknown signer is refused', async () => {
    const crl = lab.crl('rsa-int', 'rsa-signer2');
    const added = await admin('POST', '/admin/v1/trust/crls', { der: crl.toString('base64') });
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    expect(added.body).toMatchObject({ revokedCount: 1, stale: false, issuer: expect.stringContaining('rsa-int') });
    await waitFor(async () => (await verifyOn(other, lab.licence('rsa', 'rsa-signer2', { extraCerts: ['rsa-int'] }))).body.reasons?.includes('CERT_REVOKED'), 5_000, 'revocation seen');
    lab.root('stranger-root', 'rsa');
    lab.issue('stranger-int', 'stranger-root', 'rsa', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
    lab.issue('stranger-signer', 'stranger-int', 'rsa', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n');
    const refused = await admin('POST', '/admin/v1/trust/crls', { der: lab.crl('stranger-int', 'stranger-signer').toString('base64') });
    expect(refused.status).toBe(400);
    expect(refused.body.error.details[0].code).toBe('CRL_SIGNER_UNKNOWN');
    // A large CRL is not refused for its size (a provincial CA's lists many): this one is junk, and says so.
    const large = await admin('POST', '/admin/v1/trust/crls', { der: Buffer.alloc(3 * 1024 * 1024, 1).toString('base64') });
    expect(large.status, JSON.stringify(large.body).slice(0, 300)).toBe(400);
    expect(large.body.error.code).not.toBe('BODY_TOO_LARGE');
    expect((await admin('GET', '/admin/v1/trust/crls')).body.items).toHaveLength(1);
  });
});

describe('approvals with licences', () => {
  it('a VALID licence for the applicant: APPROVED, the platform gets the envelope and the report', async () => {
    nextLicence = lab.licence('ec', 'ec-signer', { extraCerts: ['ec-int'] });
    expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase('LIC-OK-1') })).status).toBe(202);
    const ev = await waitFor(() => platform.forCase('LIC-OK-1').find((e) => e.body.status === 'APPROVED'), 15_000, 'APPROVED event');
    expect(ev.body.licence).toMatchObject({ envelope: { licenceId: nextLicence.licenceId }, verification: { verdict: 'VALID' } });
  });

  it('a licence whose file is larger than the API body limit comes in by webhook all the same: APPROVED', async () => {
    // 2 MiB of file, 2.7 MiB of JSON: over server.bodyLimitBytes (1 MiB), within the department's maxAnswerBytes (4 MiB).
    nextLicence = lab.licence('ec', 'ec-signer', { extraCerts: ['ec-int'], file: Buffer.alloc(2 * 1024 * 1024, 3) });
    expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase('LIC-BIG-1') })).status).toBe(202);
    const ev = await waitFor(() => platform.forCase('LIC-BIG-1').find((e) => e.body.status === 'APPROVED'), 15_000, 'APPROVED event');
    expect(ev.body.licence).toMatchObject({ verification: { verdict: 'VALID' } });
    // Beyond the department's limit, a callback is refused as too large, in the API's error format.
    const huge = await gw.call('POST', '/callbacks/inv', { raw: Buffer.alloc(5 * 1024 * 1024, 0x20), headers: { 'content-type': 'application/json' } });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('BODY_TOO_LARGE');
  });

  it('a licence for somebody else, or revoked: ATTENTION with the reasons, an error line for ops', async () => {
    nextLicence = lab.licence('rsa', 'rsa-signer2', { extraCerts: ['rsa-int'], meta: { holder: { name: '李四', idType: 'ID_CARD', idNumber: '110101199003074477' } } as Partial<Envelope> });
    expect((await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase('LIC-BAD-1') })).status).toBe(202);
    const ev = await waitFor(() => platform.forCase('LIC-BAD-1').find((e) => e.body.status === 'ATTENTION'), 15_000, 'ATTENTION event');
    expect(ev.body.licence.verification).toMatchObject({ verdict: 'INVALID', reasons: expect.arrayContaining(['HOLDER_MISMATCH', 'CERT_REVOKED']) });
    expect(ev.body.lastError).toMatchObject({ code: 'LICENCE_INVALID' });
    expect(gw.logs.parsed().some((l) => l.level === 50 && l.caseNo === 'LIC-BAD-1' && l.code === 'LICENCE_INVALID')).toBe(true);
    // And a metric ops can alert on.
    const metrics = await gw.call('GET', '/metrics', { token: ADMIN_TOKEN });
    expect(metrics.status).toBe(200);
    expect(String(metrics.body)).toMatch(/gateway_licence_verifications_total\{verdict="INVALID",source="inv"\} [1-9]/);
    expect(String(metrics.body)).toMatch(/gateway_licence_verifications_total\{verdict="VALID",source="inv"\} [1-9]/);
    expect((await gw.call('GET', '/metrics', { token: gw.platformToken })).status).toBe(403);
  });

  it('removing the anchor makes the same licence untrusted everywhere', async () => {
    const e = lab.licence('ec', 'ec-signer', { extraCerts: ['ec-int'] });
    const id = (await admin('GET', '/admin/v1/trust/anchors')).body.items.find((a: { subject: string }) => a.subject.includes('ec-root')).id;
    expect((await admin('DELETE', `/admin/v1/trust/anchors/${id}`)).status).toBe(204);
    await waitFor(async () => (await verifyOn(other, e)).body.reasons?.includes('UNTRUSTED_CHAIN'), 5_000, 'removal seen');
  });
});
