/**
 * Verification of an e-licence envelope (specs/e-licence.md). Every check runs and every failing
 * reason is reported, never just the first; nothing in the input can crash the verifier.
 */
import { createHash } from 'node:crypto';
import type { DepartmentId } from '../model/case.js';
import { parseSignedData, type Crl, type SignedData } from './cms.js';
import { issued, OIDS, parseCert, sm2Verify, verifyWith, type Cert } from './x509.js';

export type Reason =
  | 'MALFORMED'
  | 'UNSUPPORTED_ALGORITHM'
  | 'SIGNATURE_MISMATCH'
  | 'UNTRUSTED_CHAIN'
  | 'CERT_NOT_YET_VALID'
  | 'CERT_EXPIRED'
  | 'CERT_REVOKED'
  | 'KEY_USAGE'
  | 'HOLDER_MISMATCH';

export interface VerificationReport {
  verdict: 'VALID' | 'INVALID';
  reasons: Reason[];
  signer: { subject: string; serialNumber: string; notBefore: string; notAfter: string; fingerprintSha256: string } | null;
  anchor: string | null;
  signingTime: string | null;
  expiredNow: boolean;
  checkedAt: string;
}

export interface Anchor {
  id: string;
  cert: Cert;
  issuerCodes: string[];
  departments: DepartmentId[];
}

/** What the verifier trusts: anchors bound to issuer codes and departments, and verified CRLs. */
export interface TrustSet {
  anchors: readonly Anchor[];
  crls: readonly Crl[];
}

export interface VerifyContext {
  trust: TrustSet;
  /** The department that returned the licence, if any: its anchors count too. */
  department?: DepartmentId;
  /** When verified for a case: the identifiers its holder may have (applicant's, organisation's). */
  holderIds?: string[];
  now?: Date;
  /** Told the intermediates of a chain that reached an anchor (so the trust store may learn them). */
  onChain?: (intermediates: Cert[]) => void;
}

const SUPPORTED: Record<string, string> = { 'RSA-SHA256': 'CMS', 'ECDSA-SHA256': 'CMS', 'SM2-SM3': 'RAW' };

/** Strict Base64: Buffer.from skips characters outside the alphabet, so a short result betrays them. */
function b64(s: unknown): Buffer | null {
  if (typeof s !== 'string' || !s.length) return null;
  const decode = (t: string) => {
    if (t.length % 4 !== 0) return null;
    const pad = t.endsWith('==') ? 2 : t.endsWith('=') ? 1 : 0;
    const buf = Buffer.from(t, 'base64');
    return buf.length === (t.length / 4) * 3 - pad && !t.slice(0, t.length - pad).includes('=') ? buf : null;
  };
  // Line breaks are allowed (XML carries them); the common case has none and skips the copy.
  return decode(s) ?? (/\s/.test(s) ? decode(s.replace(/\s+/g, '')) : null);
}

const str = (v: unknown): v is string => typeof v === 'string';

/** Certificates by their Base64: the same intermediates come with every licence of an issuer. */
const certsByB64 = new Map<string, Cert>();
function certFromB64(s: unknown): Cert {
  if (typeof s === 'string') {
    const hit = certsByB64.get(s);
    if (hit) return hit;
  }
  const der = b64(s);
  if (!der) throw new Error('certificate is not Base64');
  const c = parseCert(der);
  if (certsByB64.size >= 5000) certsByB64.delete(certsByB64.keys().next().value!);
  certsByB64.set(s as string, c);
  return c;
}

/** The signature covers the metadata line `licenceId|typeCode|holder.idNumber|issuer.code|issueDate|validFrom|validTo`, a line feed, then the file. */
export interface Envelope {
  licenceId: string;
  typeCode: string;
  typeName?: string;
  holder: { name?: string; idType?: string; idNumber: string };
  issuer: { name?: string; code: string };
  issueDate: string;
  validFrom: string;
  validTo: string;
  file: { name?: string; mediaType?: string; base64: string };
  signature: { algorithm: string; format: string; value: string; certificates?: string[] };
}

/** Is this an envelope at all (the shape, not its contents)? The API answers 400 otherwise. */
export function isEnvelope(v: unknown): v is Envelope {
  const e = v as Partial<Envelope> | null;
  return !!e && typeof e === 'object' && !Array.isArray(e) && !!e.signature && typeof e.signature === 'object' && !!e.file && typeof e.file === 'object' && !!e.holder && typeof e.holder === 'object' && !!e.issuer && typeof e.issuer === 'object';
}

function anchorsFor(trust: TrustSet, issuerCode: string, dept?: DepartmentId): Anchor[] {
  return trust.anchors.filter((a) => a.issuerCodes.includes(issuerCode) || (dept !== undefined && a.departments.includes(dept)));
}

/** Beijing calendar date → the instant it starts. */
function dateStart(d: string): Date | null {
  return /^\d{4}-\d{2}-\d{2}$/.test(d) && !Number.isNaN(Date.parse(`${d}T00:00:00+08:00`)) ? new Date(`${d}T00:00:00+08:00`) : null;
}

export function verifyLicence(input: unknown, ctx: VerifyContext): VerificationReport {
  const now = ctx.now ?? new Date();
  const reasons = new Set<Reason>();
  const report = (signer: Cert | null, anchor: Cert | null, signingTime: Date | null, expiredNow: boolean): VerificationReport => ({
    verdict: reasons.size ? 'INVALID' : 'VALID',
    reasons: [...reasons],
    signer: signer && { subject: signer.subject, serialNumber: signer.serialHex.toUpperCase(), notBefore: signer.notBeforeIso, notAfter: signer.notAfterIso, fingerprintSha256: signer.fingerprintSha256 },
    anchor: anchor?.subject ?? null,
    signingTime: signingTime?.toISOString() ?? null,
    expiredNow,
    checkedAt: now.toISOString(),
  });
  try {
    return check(input, ctx, now, reasons, report);
  } catch {
    // Whatever the input, a report: an unforeseen shape is a malformed licence.
    reasons.add('MALFORMED');
    return report(null, null, null, false);
  }
}

function check(input: unknown, ctx: VerifyContext, now: Date, reasons: Set<Reason>, report: (s: Cert | null, a: Cert | null, t: Date | null, x: boolean) => VerificationReport): VerificationReport {
  if (!isEnvelope(input)) {
    reasons.add('MALFORMED');
    return report(null, null, null, false);
  }
  const e = input;
  const sig = e.signature;
  const fieldsOk = [e.licenceId, e.typeCode, e.holder.idNumber, e.issuer.code, e.issueDate, e.validFrom].every(str) && (e.validTo === undefined || e.validTo === null || str(e.validTo));
  const validTo = str(e.validTo) ? e.validTo : '';
  const validToStart = validTo ? dateStart(validTo) : null;
  const expiredNow = !!validToStart && validToStart.getTime() + 86_400_000 <= now.getTime();
  if (!str(sig.algorithm) || !str(sig.format) || SUPPORTED[sig.algorithm] !== sig.format) reasons.add('UNSUPPORTED_ALGORITHM');
  const file = b64(e.file.base64);
  const sigBytes = b64(sig.value);
  const listed = Array.isArray(sig.certificates) ? sig.certificates : [];
  let extra: Cert[] = [];
  try {
    extra = listed.map(certFromB64);
  } catch {
    reasons.add('MALFORMED');
  }
  if (!fieldsOk || !file || !sigBytes || (sig.certificates !== undefined && !Array.isArray(sig.certificates))) reasons.add('MALFORMED');
  if (reasons.has('MALFORMED') || reasons.has('UNSUPPORTED_ALGORITHM') || !file || !sigBytes) return report(null, null, null, expiredNow);
  // The signed bytes are built only where a verify needs them whole; the digest streams the parts.
  const line = Buffer.from(`${[e.licenceId, e.typeCode, e.holder.idNumber, e.issuer.code, e.issueDate, e.validFrom, validTo].join('|')}\n`, 'utf8');
  let whole: Buffer | null = null;
  const data = () => (whole ??= Buffer.concat([line, file]));

  // ---- the signature, and who made it
  let signer: Cert | null = null;
  let signingTime: Date | null = null;
  let pool: Cert[] = extra;
  if (sig.format === 'CMS') {
    let sd: SignedData;
    try {
      sd = parseSignedData(sigBytes);
    } catch {
      reasons.add('MALFORMED');
      return report(null, null, null, expiredNow);
    }
    pool = [...sd.certificates, ...extra];
    const si = sd.signers[0]!;
    signingTime = si.signingTime;
    const wantKey = sig.algorithm === 'RSA-SHA256' ? 'rsa' : 'ec-p256';
    const okAlg = si.digestAlg === OIDS.sha256 && (sig.algorithm === 'RSA-SHA256' ? [OIDS.rsaEncryption, OIDS.sha256WithRSA].includes(si.sigAlg as never) : si.sigAlg === OIDS.ecdsaWithSHA256);
    if (!okAlg) reasons.add('UNSUPPORTED_ALGORITHM');
    const sid = si.sid;
    signer = pool.find((c) => ('serialHex' in sid ? c.serialHex === sid.serialHex && c.issuerDer.equals(sid.issuerDer) : false)) ?? null;
    if (!signer || signer.keyKind !== wantKey) reasons.add('SIGNATURE_MISMATCH');
    else if (okAlg) {
      let good: boolean;
      if (si.signedAttrs) {
        const digest = createHash('sha256').update(line).update(file).digest();
        good = !!si.messageDigest && si.messageDigest.equals(digest) && verifyWith(signer, sig.algorithm === 'RSA-SHA256' ? OIDS.sha256WithRSA : OIDS.ecdsaWithSHA256, si.signedAttrs, si.signature);
      } else good = verifyWith(signer, sig.algorithm === 'RSA-SHA256' ? OIDS.sha256WithRSA : OIDS.ecdsaWithSHA256, data(), si.signature);
      if (!good) reasons.add('SIGNATURE_MISMATCH');
    }
  } else {
    signer = extra[0] ?? null;
    if (!signer) {
      reasons.add('MALFORMED');
      return report(null, null, null, expiredNow);
    }
    if (signer.keyKind !== 'sm2') reasons.add('UNSUPPORTED_ALGORITHM');
    else if (!sm2Verify(signer, data(), sigBytes)) reasons.add('SIGNATURE_MISMATCH');
  }
  if (!signer) return report(null, null, signingTime, expiredNow);
  // CMS signingTime is an instant; an issueDate is a whole (Beijing) day, so a certificate valid at
  // any moment of that day counts.
  const day = signingTime ? null : dateStart(e.issueDate);
  const at = signingTime ?? day ?? now;
  const from = at.getTime();
  const to = day ? from + 86_400_000 - 1 : from;

  // ---- the chain: through the given intermediates to an anchor bound to this issuer or department
  const anchors = anchorsFor(ctx.trust, e.issuer.code, ctx.department);
  const chain: Cert[] = [signer];
  let anchor: Cert | null = null;
  for (let depth = 0; depth < 8 && !anchor; depth++) {
    const tip = chain[chain.length - 1]!;
    const a = anchors.find((x) => issued(x.cert, tip));
    if (a) {
      anchor = a.cert;
      break;
    }
    const next = pool.find((c) => !chain.includes(c) && c.isCA && issued(c, tip));
    if (!next) break;
    chain.push(next);
  }
  if (!anchor) reasons.add('UNTRUSTED_CHAIN');
  else ctx.onChain?.(chain.slice(1));
  const all = anchor ? [...chain, anchor] : chain;

  // ---- validity at the signing time, revocation, key usage
  for (const c of all) {
    if (to < c.notBefore.getTime()) reasons.add('CERT_NOT_YET_VALID');
    if (from > c.notAfter.getTime()) reasons.add('CERT_EXPIRED');
  }
  // A CRL counts only if the certificate's own issuer signed it. A CRL past its nextUpdate still
  // counts for what it lists (a revocation is never undone); it just cannot vouch for the rest.
  chain.forEach((c, i) => {
    const issuer = all[i + 1];
    for (const crl of ctx.trust.crls) {
      if (!crl.issuerDer.equals(c.issuerDer) || !crl.revoked.has(c.serialHex)) continue;
      if (issuer && verifyWith(issuer, crl.sigAlg, crl.tbs, crl.signature)) reasons.add('CERT_REVOKED');
    }
  });
  if (signer.keyUsage && !signer.keyUsage.digitalSignature && !signer.keyUsage.nonRepudiation) reasons.add('KEY_USAGE');
  if (ctx.holderIds && !ctx.holderIds.includes(e.holder.idNumber)) reasons.add('HOLDER_MISMATCH');
  return report(signer, anchor, at, expiredNow);
}
