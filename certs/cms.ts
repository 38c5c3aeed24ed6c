/** CMS SignedData (RFC 5652), detached, as `openssl cms -sign -binary -outform DER` makes it; and CRLs (RFC 5280). */
import { children, DerError, expect, intHex, oid, readAll, TAG, time, value, whole, type Node } from './der.js';
import { parseCert, type Cert } from './x509.js';

const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_DATA = '1.2.840.113549.1.7.1';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
const OID_SIGNING_TIME = '1.2.840.113549.1.9.5';
const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';

export interface SignerInfo {
  sid: { issuerDer: Buffer; serialHex: string } | { ski: Buffer };
  digestAlg: string;
  /** The signed attributes re-encoded as SET OF (what the signature covers), when present. */
  signedAttrs: Buffer | null;
  messageDigest: Buffer | null;
  contentType: string | null;
  signingTime: Date | null;
  sigAlg: string;
  signature: Buffer;
}

export interface SignedData {
  certificates: Cert[];
  signers: SignerInfo[];
  detached: boolean;
}

const alg = (n: Node | undefined) => oid(children(expect(n, TAG.SEQUENCE, 'AlgorithmIdentifier'))[0]!);

export function parseSignedData(der: Buffer): SignedData {
  const ci = children(expect(readAll(der), TAG.SEQUENCE, 'ContentInfo'));
  if (oid(ci[0]!) !== OID_SIGNED_DATA) throw new DerError('ContentInfo is not SignedData');
  const sd = children(expect(children(expect(ci[1], 0xa0, 'content'))[0], TAG.SEQUENCE, 'SignedData'));
  let i = 1; // version
  i++; // digestAlgorithms SET
  const encap = children(expect(sd[i++], TAG.SEQUENCE, 'encapContentInfo'));
  if (oid(encap[0]!) !== OID_DATA) throw new DerError('encapsulated content is not data');
  const detached = encap.length === 1;
  const certificates: Cert[] = [];
  if (sd[i]?.tag === 0xa0) {
    for (const c of children(sd[i++]!)) if (c.tag === TAG.SEQUENCE) certificates.push(parseCert(whole(c))); // parseCert copies on a cache miss only
  }
  if (sd[i]?.tag === 0xa1) i++; // crls
  const signers = children(expect(sd[i], TAG.SET, 'signerInfos')).map(parseSignerInfo);
  if (!signers.length) throw new DerError('no SignerInfo');
  return { certificates, signers, detached };
}

function parseSignerInfo(n: Node): SignerInfo {
  const p = children(expect(n, TAG.SEQUENCE, 'SignerInfo'));
  let i = 1;
  const sidN = p[i++]!;
  let sid: SignerInfo['sid'];
  if (sidN.tag === TAG.SEQUENCE) {
    const [issuer, serial] = children(sidN);
    sid = { issuerDer: Buffer.from(whole(expect(issuer, TAG.SEQUENCE, 'issuer'))), serialHex: intHex(serial!) };
  } else if (sidN.tag === 0x80) sid = { ski: Buffer.from(value(sidN)) };
  else throw new DerError('unknown SignerIdentifier');
  const digestAlg = alg(p[i++]);
  let signedAttrs: Buffer | null = null;
  let messageDigest: Buffer | null = null;
  let signingTime: Date | null = null;
  let contentType: string | null = null;
  if (p[i]?.tag === 0xa0) {
    const attrsN = p[i++]!;
    // The signature covers the attributes with their SET OF tag, not the [0] IMPLICIT one.
    signedAttrs = Buffer.from(whole(attrsN));
    signedAttrs[0] = TAG.SET;
    for (const a of children(attrsN)) {
      const [typeN, valuesN] = children(a);
      const type = oid(typeN!);
      const first = children(expect(valuesN, TAG.SET, 'attribute values'))[0];
      if (type === OID_MESSAGE_DIGEST) messageDigest = Buffer.from(value(expect(first, TAG.OCTET_STRING, 'messageDigest')));
      else if (type === OID_SIGNING_TIME && first) signingTime = time(first);
      else if (type === OID_CONTENT_TYPE && first) contentType = oid(first);
    }
  }
  const sigAlg = alg(p[i++]);
  const signature = Buffer.from(value(expect(p[i++], TAG.OCTET_STRING, 'signature')));
  return { sid, digestAlg, signedAttrs, messageDigest, contentType, signingTime, sigAlg, signature };
}

export interface Crl {
  der: Buffer;
  tbs: Buffer;
  sigAlg: string;
  signature: Buffer;
  issuerDer: Buffer;
  thisUpdate: Date;
  nextUpdate: Date | null;
  revoked: Map<string, Date>;
}

export function parseCrl(der: Buffer): Crl {
  const [tbsN, algN, sigN] = children(expect(readAll(der), TAG.SEQUENCE, 'CertificateList'));
  const t = children(expect(tbsN, TAG.SEQUENCE, 'TBSCertList'));
  let i = 0;
  if (t[0]?.tag === TAG.INTEGER) i++; // version
  i++; // signature algorithm
  const issuerDer = Buffer.from(whole(expect(t[i++], TAG.SEQUENCE, 'issuer')));
  const thisUpdate = time(t[i++]!);
  let nextUpdate: Date | null = null;
  if (t[i] && (t[i]!.tag === TAG.UTC_TIME || t[i]!.tag === TAG.GEN_TIME)) nextUpdate = time(t[i++]!);
  const revoked = new Map<string, Date>();
  if (t[i]?.tag === TAG.SEQUENCE) for (const r of children(t[i++]!)) {
    const [serial, date] = children(r);
    revoked.set(intHex(serial!), time(date!));
  }
  const sig = value(expect(sigN, TAG.BIT_STRING, 'signature'));
  return { der, tbs: Buffer.from(whole(tbsN!)), sigAlg: alg(algN), signature: Buffer.from(sig.subarray(1)), issuerDer, thisUpdate, nextUpdate, revoked };
}
