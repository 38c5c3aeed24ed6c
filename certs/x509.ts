/**
 * Certificates: node:crypto's X509Certificate for what it does well (subject, validity,
 * fingerprint, RSA/ECDSA keys), our DER reader for what it does not expose (the TBS bytes and
 * signature, keyUsage, SM2 keys). Signatures: node:crypto for RSA/ECDSA; sm-crypto for SM2/SM3
 * with the GM/T 0009 default user id, which node's crypto cannot set.
 */
import { createHash, verify as nodeVerify, X509Certificate, type KeyObject } from 'node:crypto';
import smCrypto from 'sm-crypto';
import { bits, children, DerError, expect, intHex, oid, read, readAll, TAG, time, value, whole, type Node } from './der.js';

export const OIDS = {
  sha256: '2.16.840.1.101.3.4.2.1',
  sm3: '1.2.156.10197.1.401',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  sm2Curve: '1.2.156.10197.1.301',
  sm2WithSM3: '1.2.156.10197.1.501',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  prime256v1: '1.2.840.10045.3.1.7',
} as const;

export const SM2_DEFAULT_ID = '1234567812345678';
const { sm2 } = smCrypto;

export type KeyKind = 'rsa' | 'ec-p256' | 'sm2' | 'other';

export interface Cert {
  der: Buffer;
  x509: X509Certificate;
  tbs: Buffer;
  sigAlg: string;
  signature: Buffer;
  serialHex: string;
  issuerDer: Buffer;
  subjectDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  keyKind: KeyKind;
  /** RSA / EC P-256 key for node:crypto. */
  key: KeyObject | null;
  /** SM2 public key, uncompressed point in hex, for sm-crypto. */
  sm2Public: string | null;
  keyUsage: { digitalSignature: boolean; nonRepudiation: boolean; keyCertSign: boolean; cRLSign: boolean } | null;
  isCA: boolean;
  fingerprintSha256: string;
  /** For reports, computed once. */
  subject: string;
  notBeforeIso: string;
  notAfterIso: string;
}

function algOid(n: Node): string {
  return oid(children(expect(n, TAG.SEQUENCE, 'AlgorithmIdentifier'))[0]!);
}

/** Parsed certificates by DER digest: anchors and intermediates recur in every licence of an issuer. */
const parsed = new Map<string, Cert>();
/** Chain links already verified (issuer fingerprint > certificate fingerprint). */
const links = new Map<string, boolean>();
const CACHE_MAX = 10_000;

function remember<V>(m: Map<string, V>, k: string, v: V): V {
  if (m.size >= CACHE_MAX) m.delete(m.keys().next().value!);
  m.set(k, v);
  return v;
}

export function parseCert(der: Buffer): Cert {
  // A cheap key (length and the signature's tail), confirmed by comparing the whole DER.
  const key = `${der.length}:${der.subarray(Math.max(0, der.length - 24)).toString('hex')}`;
  const hit = parsed.get(key);
  if (hit && hit.der.equals(der)) return hit;
  return remember(parsed, key, parseCertUncached(Buffer.from(der)));
}

function parseCertUncached(der: Buffer): Cert {
  const root = readAll(der);
  const [tbsN, algN, sigN] = children(expect(root, TAG.SEQUENCE, 'Certificate'));
  if (!tbsN || !algN || !sigN) throw new DerError('Certificate needs three parts');
  const tbs = children(expect(tbsN, TAG.SEQUENCE, 'TBSCertificate'));
  let i = 0;
  if (tbs[0]!.tag === 0xa0) i++; // [0] version
  const serialHex = intHex(tbs[i++]!);
  i++; // signature algorithm (repeated)
  const issuerDer = whole(expect(tbs[i++], TAG.SEQUENCE, 'issuer'));
  const validity = children(expect(tbs[i++], TAG.SEQUENCE, 'validity'));
  const subjectDer = whole(expect(tbs[i++], TAG.SEQUENCE, 'subject'));
  const spki = expect(tbs[i++], TAG.SEQUENCE, 'SubjectPublicKeyInfo');
  const [spkiAlg, spkiKey] = children(spki);
  const algParts = children(expect(spkiAlg, TAG.SEQUENCE, 'key algorithm'));
  const keyAlg = oid(algParts[0]!);
  const curve = algParts[1]?.tag === TAG.OID ? oid(algParts[1]) : null;
  let keyUsage: Cert['keyUsage'] = null;
  let isCA = false;
  for (const t of tbs.slice(i)) {
    if (t.tag !== 0xa3) continue;
    for (const ext of children(expect(children(t)[0], TAG.SEQUENCE, 'extensions'))) {
      const parts = children(ext);
      const id = oid(parts[0]!);
      const octets = value(expect(parts[parts.length - 1], TAG.OCTET_STRING, 'extension value'));
      if (id === OIDS.keyUsage) {
        const b = bits(readAll(octets)).bytes;
        const byte0 = b[0] ?? 0;
        keyUsage = { digitalSignature: !!(byte0 & 0x80), nonRepudiation: !!(byte0 & 0x40), keyCertSign: !!(byte0 & 0x04), cRLSign: !!(byte0 & 0x02) };
      } else if (id === OIDS.basicConstraints) {
        const bc = children(readAll(octets));
        isCA = bc[0]?.tag === TAG.BOOLEAN && value(bc[0])[0] === 0xff;
      }
    }
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (e) {
    throw new DerError(`certificate does not parse: ${(e as Error).message}`);
  }
  const keyKind: KeyKind = keyAlg === OIDS.rsaEncryption ? 'rsa' : keyAlg === OIDS.ecPublicKey && curve === OIDS.prime256v1 ? 'ec-p256' : keyAlg === OIDS.ecPublicKey && curve === OIDS.sm2Curve ? 'sm2' : 'other';
  const point = bits(spkiKey!).bytes;
  return {
    der,
    x509,
    tbs: whole(tbsN),
    sigAlg: algOid(algN),
    signature: bits(sigN).bytes,
    serialHex,
    issuerDer,
    subjectDer,
    notBefore: time(validity[0]!),
    notAfter: time(validity[1]!),
    keyKind,
    key: keyKind === 'rsa' || keyKind === 'ec-p256' ? x509.publicKey : null,
    sm2Public: keyKind === 'sm2' && point[0] === 0x04 && point.length === 65 ? point.toString('hex') : null,
    keyUsage,
    isCA,
    fingerprintSha256: createHash('sha256').update(der).digest('hex'),
    subject: x509.subject,
    notBeforeIso: time(validity[0]!).toISOString(),
    notAfterIso: time(validity[1]!).toISOString(),
  };
}

/** Parses PEM (one or more certificates) or a single DER. */
export function parseCertsPem(pem: string): Cert[] {
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)];
  if (!blocks.length) throw new DerError('no certificate in PEM');
  return blocks.map((b) => parseCert(Buffer.from(b[1]!.replace(/\s+/g, ''), 'base64')));
}

/** Verifies `signature` over `data` with the key of `signer`, by the algorithm its OID names. */
export function verifyWith(signer: Cert, sigAlg: string, data: Buffer, signature: Buffer): boolean {
  try {
    if (sigAlg === OIDS.sha256WithRSA || (sigAlg === OIDS.rsaEncryption && signer.keyKind === 'rsa')) return signer.keyKind === 'rsa' && nodeVerify('sha256', data, signer.key!, signature);
    if (sigAlg === OIDS.ecdsaWithSHA256) return signer.keyKind === 'ec-p256' && nodeVerify('sha256', data, { key: signer.key!, dsaEncoding: 'der' }, signature);
    if (sigAlg === OIDS.sm2WithSM3) return sm2Verify(signer, data, signature);
    return false;
  } catch {
    return false;
  }
}

export function sm2Verify(signer: Cert, data: Buffer, signatureDer: Buffer): boolean {
  if (signer.keyKind !== 'sm2' || !signer.sm2Public) return false;
  try {
    // Bytes, not a string: a string would be taken as UTF-8 text.
    return sm2.doVerifySignature(data, signatureDer.toString('hex'), signer.sm2Public, { der: true, hash: true, userId: SM2_DEFAULT_ID });
  } catch {
    return false;
  }
}

/** Whether `issuer` signed `cert` (names match and the signature verifies). */
export function issued(issuer: Cert, cert: Cert): boolean {
  if (!issuer.subjectDer.equals(cert.issuerDer)) return false;
  const k = `${issuer.fingerprintSha256}>${cert.fingerprintSha256}`;
  return links.get(k) ?? remember(links, k, verifyWith(issuer, cert.sigAlg, cert.tbs, cert.signature));
}

export { read };
