/**
 * Licence verification against fixtures openssl makes at run time: valid RSA, ECDSA and SM2
 * licences, then one case per reason code; every invalid licence is INVALID with the right reasons.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCrl } from '../../certs/cms.js';
import { verifyLicence, type Anchor, type Envelope, type TrustSet } from '../../certs/verify.js';
import { parseCertsPem } from '../../certs/x509.js';
import { LicenceLab, type Kind } from '../helpers/licences.js';

let lab: LicenceLab;
let trust: TrustSet;
const KINDS: Kind[] = ['rsa', 'ec', 'sm2'];
const ISSUER = '11640000MB0000000X';

beforeAll(() => {
  lab = new LicenceLab();
  for (const k of KINDS) lab.chain(k);
  lab.root('rogue-root', 'rsa');
  lab.issue('rogue-int', 'rogue-root', 'rsa', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  lab.issue('rogue-signer', 'rogue-int', 'rsa', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n');
  const anchors: Anchor[] = KINDS.map((k) => ({ id: k, cert: parseCertsPem(lab.pem(`${k}-root.pem`))[0]!, issuerCodes: [ISSUER], departments: ['si'] }));
  trust = { anchors, crls: [] };
}, 120_000);

afterAll(() => lab?.cleanup());

const verify = (e: unknown, extra: Partial<Parameters<typeof verifyLicence>[1]> = {}) => verifyLicence(e, { trust, ...extra });
const withInt = (k: Kind) => ({ extraCerts: [`${k}-int`] });

describe.each(KINDS)('%s', (k) => {
  it('a valid licence (signer and intermediate given) is VALID, with the report of the spec', () => {
    const e = lab.licence(k, `${k}-signer`, withInt(k));
    const r = verify(e);
    expect(r).toMatchObject({ verdict: 'VALID', reasons: [], anchor: expect.stringContaining(`${k}-root`), expiredNow: false });
    expect(r.signer).toMatchObject({ subject: expect.stringContaining(`${k}-signer`), fingerprintSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(Date.parse(r.checkedAt)).not.toBeNaN();
  });

  it('tampered file: SIGNATURE_MISMATCH', () => {
    const e = lab.licence(k, `${k}-signer`, withInt(k));
    const f = Buffer.from(e.file.base64, 'base64');
    f[5] = f[5]! ^ 1;
    expect(verify({ ...e, file: { ...e.file, base64: f.toString('base64') } })).toMatchObject({ verdict: 'INVALID', reasons: ['SIGNATURE_MISMATCH'] });
  });

  it('tampered metadata (holder, validTo): SIGNATURE_MISMATCH', () => {
    const e = lab.licence(k, `${k}-signer`, withInt(k));
    expect(verify({ ...e, holder: { ...e.holder, idNumber: '440524188001010014' } }).reasons).toEqual(['SIGNATURE_MISMATCH']);
    expect(verify({ ...e, validTo: '2099-12-31' }).reasons).toEqual(['SIGNATURE_MISMATCH']);
  });

  it('holder not the case applicant: HOLDER_MISMATCH', () => {
    const e = lab.licence(k, `${k}-signer`, withInt(k));
    expect(verify(e, { holderIds: ['440524188001010014'] })).toMatchObject({ verdict: 'INVALID', reasons: ['HOLDER_MISMATCH'] });
    expect(verify(e, { holderIds: ['11010519491231002X'] }).verdict).toBe('VALID');
  });

  it('signer without a signing key usage: KEY_USAGE', () => {
    expect(verify(lab.licence(k, `${k}-nosign`, withInt(k)))).toMatchObject({ verdict: 'INVALID', reasons: ['KEY_USAGE'] });
  });

  it('unknown root: UNTRUSTED_CHAIN; and an anchor bound to another issuer does not count', () => {
    expect(verify(lab.licence(k, `${k}-signer`, withInt(k)), { trust: { anchors: [], crls: [] } }).reasons).toEqual(['UNTRUSTED_CHAIN']);
    const e = lab.licence(k, `${k}-signer`, { ...withInt(k), issuerCode: '91350100M000100Y43' });
    expect(verify(e).reasons).toEqual(['UNTRUSTED_CHAIN']);
    // …unless the returning department's anchors are asked too.
    expect(verify(e, { department: 'si' }).verdict).toBe('VALID');
  });

  it('signed before the signer was valid, or after it expired: CERT_NOT_YET_VALID, CERT_EXPIRED', () => {
    // Without signed attributes (and for SM2) the signing time is the issueDate.
    const early = lab.licence(k, `${k}-signer`, { ...withInt(k), noattr: true, meta: { issueDate: '2001-01-01', validFrom: '2001-01-01' } as Partial<Envelope> });
    expect(verify(early).reasons).toEqual(expect.arrayContaining(['CERT_NOT_YET_VALID']));
    const late = lab.licence(k, `${k}-short`, { ...withInt(k), noattr: true, meta: { issueDate: '2030-06-01', validFrom: '2030-06-01' } as Partial<Envelope> });
    expect(verify(late)).toMatchObject({ verdict: 'INVALID', reasons: ['CERT_EXPIRED'] });
  });

  it('revoked signer (CRL of its issuer): CERT_REVOKED; a CRL signed by the wrong key is ignored', () => {
    const e = lab.licence(k, `${k}-signer2`, withInt(k));
    const crl = parseCrl(lab.crl(`${k}-int`, `${k}-signer2`));
    expect(verify(e, { trust: { ...trust, crls: [crl] } })).toMatchObject({ verdict: 'INVALID', reasons: ['CERT_REVOKED'] });
    const forged = parseCrl(lab.crl(`${k}-int-twin`, `${k}-signer2`));
    expect(forged.issuerDer.equals(crl.issuerDer)).toBe(true);
    expect(verify(e, { trust: { ...trust, crls: [forged] } }).verdict).toBe('VALID');
  });

  it('the intermediate missing: UNTRUSTED_CHAIN', () => {
    expect(verify(lab.licence(k, `${k}-signer`)).reasons).toEqual(['UNTRUSTED_CHAIN']);
  });
});

describe('CMS specifics', () => {
  it('with and without signed attributes; signer in the CMS, the envelope or both', () => {
    expect(verify(lab.licence('rsa', 'rsa-signer', { ...withInt('rsa'), noattr: true })).verdict).toBe('VALID');
    expect(verify(lab.licence('ec', 'ec-signer', { certsInCms: false, extraCerts: ['ec-signer', 'ec-int'] })).verdict).toBe('VALID');
    expect(verify(lab.licence('rsa', 'rsa-signer', { extraCerts: ['rsa-signer', 'rsa-int'] })).verdict).toBe('VALID');
  });

  it('signingTime from the signed attributes is the time checked, and reported', () => {
    const r = verify(lab.licence('rsa', 'rsa-signer', withInt('rsa')));
    expect(Math.abs(Date.parse(r.signingTime!) - Date.now())).toBeLessThan(600_000);
  });

  it('swapped signer certificate (no SignerInfo matches): SIGNATURE_MISMATCH', () => {
    const e = lab.licence('rsa', 'rsa-signer', { certsInCms: false, extraCerts: ['rsa-signer2', 'rsa-int'] });
    expect(verify(e).reasons).toEqual(expect.arrayContaining(['SIGNATURE_MISMATCH']));
  });

  it('a licence signed by a rogue chain: UNTRUSTED_CHAIN', () => {
    expect(verify(lab.licence('rsa', 'rogue-signer', { extraCerts: ['rogue-int'] })).reasons).toEqual(['UNTRUSTED_CHAIN']);
  });

  it('expiredNow is information, not a failure', () => {
    const e = lab.licence('ec', 'ec-signer', { ...withInt('ec'), meta: { validTo: '2020-01-01' } as Partial<Envelope> });
    expect(verify(e)).toMatchObject({ verdict: 'VALID', expiredNow: true });
  });
});

describe('broken input never crashes and is MALFORMED or UNSUPPORTED_ALGORITHM', () => {
  it('truncated DER, garbage Base64, an algorithm outside the list', () => {
    const e = lab.licence('rsa', 'rsa-signer', withInt('rsa'));
    const truncated = { ...e, signature: { ...e.signature, value: Buffer.from(e.signature.value, 'base64').subarray(0, 200).toString('base64') } };
    expect(verify(truncated)).toMatchObject({ verdict: 'INVALID', reasons: ['MALFORMED'] });
    expect(verify({ ...e, signature: { ...e.signature, value: '@@not base64@@' } })).toMatchObject({ verdict: 'INVALID', reasons: ['MALFORMED'] });
    expect(verify({ ...e, file: { ...e.file, base64: 'QUJD*' } }).reasons).toEqual(['MALFORMED']);
    expect(verify({ ...e, signature: { ...e.signature, certificates: ['AAAA'] } }).reasons).toEqual(['MALFORMED']);
    expect(verify({ ...e, signature: { ...e.signature, algorithm: 'DSA-SHA1' } }).reasons).toEqual(['UNSUPPORTED_ALGORITHM']);
    expect(verify({ ...e, signature: { ...e.signature, format: 'RAW' } }).reasons).toEqual(['UNSUPPORTED_ALGORITHM']);
    // An RSA CMS presented as ECDSA.
    expect(verify({ ...e, signature: { ...e.signature, algorithm: 'ECDSA-SHA256' } }).verdict).toBe('INVALID');
  });

  it('a fuzzed stream of broken envelopes', () => {
    const e = lab.licence('ec', 'ec-signer', withInt('ec'));
    const sig = Buffer.from(e.signature.value, 'base64');
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let invalid = 0;
    for (let i = 0; i < 300; i++) {
      const s = Buffer.from(sig);
      for (let j = 0; j < 1 + Math.floor(rnd() * 4); j++) s[Math.floor(rnd() * s.length)] = Math.floor(rnd() * 256);
      // Never a throw; a byte outside what is signed (a CMS version, say) may leave it valid.
      const r = verify({ ...e, signature: { ...e.signature, value: s.toString('base64') } });
      expect(['VALID', 'INVALID']).toContain(r.verdict);
      if (r.verdict === 'INVALID') invalid++;
    }
    expect(invalid).toBeGreaterThan(250);
    for (const junk of [null, 1, 'x', [], {}, { signature: {} }, { ...e, holder: null }, { ...e, signature: { ...e.signature, certificates: 'x' } }]) expect(verify(junk).verdict).toBe('INVALID');
  });
});
