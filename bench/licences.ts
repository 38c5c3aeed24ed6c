/**
 * Licence verification speed: full verification of an RSA-2048 CMS licence with a 2 KB file (parse,
 * digest, chain,
 * validity, CRLs, key usage) side by side, in the same run, with a bare node:crypto verify of the
 * same signature (the floor any verifier pays) and with node-forge's pure-JS RSA verify of it.
 */
import { createPublicKey, verify } from 'node:crypto';
import forge from 'node-forge';
import { parseSignedData } from '../certs/cms.js';
import { verifyLicence, type TrustSet } from '../certs/verify.js';
import { parseCertsPem } from '../certs/x509.js';
import { LicenceLab } from '../tests/helpers/licences.js';

function rate(fn: () => unknown, ms: number): number {
  for (let i = 0; i < 200; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(ms)) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

export interface LicenceBench {
  fullPerSecond: number;
  bareVerifyPerSecond: number;
  forgeVerifyPerSecond: number;
  fullVsBare: number;
  bareVsForge: number;
}

export function benchLicences(ms = 2000): LicenceBench {
  const lab = new LicenceLab();
  try {
    lab.chain('rsa');
    const e = lab.licence('rsa', 'rsa-signer', { extraCerts: ['rsa-int'], file: Buffer.alloc(2_000, 7) });
    const trust: TrustSet = { anchors: [{ id: 'root', cert: parseCertsPem(lab.pem('rsa-root.pem'))[0]!, issuerCodes: [e.issuer.code], departments: [] }], crls: [] };
    if (verifyLicence(e, { trust }).verdict !== 'VALID') throw new Error('bench licence does not verify');
    const si = parseSignedData(Buffer.from(e.signature.value, 'base64')).signers[0]!;
    if (!si.signedAttrs) throw new Error('expected signed attributes');
    const key = createPublicKey(lab.pem('rsa-signer.pem'));
    const attrs = si.signedAttrs;
    const sig = si.signature;
    if (!verify('sha256', attrs, key, sig)) throw new Error('bare verify fails');
    const forgeKey = forge.pki.certificateFromPem(lab.pem('rsa-signer.pem')).publicKey as forge.pki.rsa.PublicKey;
    const attrsBinary = attrs.toString('binary');
    const sigBinary = sig.toString('binary');
    const forgeVerify = () => {
      const md = forge.md.sha256.create();
      md.update(attrsBinary);
      return forgeKey.verify(md.digest().bytes(), sigBinary);
    };
    if (!forgeVerify()) throw new Error('forge verify fails');
    // Interleaved rounds, medians: a noisy neighbour then hits both sides alike.
    const rounds = 7;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const fulls: number[] = [];
    const bares: number[] = [];
    for (let r = 0; r < rounds; r++) {
      fulls.push(rate(() => verifyLicence(e, { trust }), ms / rounds));
      bares.push(rate(() => verify('sha256', attrs, key, sig), ms / rounds));
    }
    const full = median(fulls);
    const bare = median(bares);
    const forgeRate = rate(forgeVerify, ms / 2);
    return { fullPerSecond: full, bareVerifyPerSecond: bare, forgeVerifyPerSecond: forgeRate, fullVsBare: full / bare, bareVsForge: bare / forgeRate };
  } finally {
    lab.cleanup();
  }
}
