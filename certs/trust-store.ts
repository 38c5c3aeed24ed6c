/**
 * The trust store: anchors (each bound to issuer codes and departments) and CRLs, kept in Redis so
 * every gateway process shares them; each process keeps them parsed in memory and reloads when
 * the store's revision moves. Seeded from certs/anchors/manifest.json when empty. CRLs are taken
 * only if signed by an anchor or by an intermediate seen in a verified chain.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../queue/redis-client.js';
import type { Logger } from 'pino';
import { isDepartment, type DepartmentId } from '../model/case.js';
import { parseCrl, type Crl } from './cms.js';
import { parseCert, parseCertsPem, verifyWith, type Cert } from './x509.js';
import type { Anchor, TrustSet } from './verify.js';

export class TrustError extends Error {
  constructor(
    readonly code: 'NOT_A_CA' | 'UNPARSABLE' | 'CRL_SIGNER_UNKNOWN' | 'INVALID',
    message: string,
    readonly path = '',
  ) {
    super(message);
  }
}

interface StoredAnchor {
  pem: string;
  issuerCodes: string[];
  departments: DepartmentId[];
  addedBy: string;
  addedAt: string;
}

export interface AnchorView {
  id: string;
  subject: string;
  fingerprintSha256: string;
  notBefore: string;
  notAfter: string;
  issuerCodes: string[];
  departments: DepartmentId[];
  addedBy: string;
  addedAt: string;
}

export interface CrlView {
  id: string;
  issuer: string;
  thisUpdate: string;
  nextUpdate: string | null;
  stale: boolean;
  revokedCount: number;
}

const pemToDer = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');

export class TrustStore {
  private set: TrustSet = { anchors: [], crls: [] };
  private views: { anchors: AnchorView[]; crls: CrlView[] } = { anchors: [], crls: [] };
  private rev: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private known = new Map<string, Cert>();

  constructor(
    private readonly redis: RedisClient,
    private readonly ns: string,
    private readonly log: Logger,
  ) {}

  private k(...p: string[]) {
    return `{${this.ns}}:trust:${p.join(':')}`;
  }

  current(): TrustSet {
    return this.set;
  }

  list() {
    return this.views;
  }

  /** Installs the seed anchors of `dir`/manifest.json if the store holds no anchor yet. */
  async installSeeds(dir: string): Promise<number> {
    let manifest: { anchors?: { file: string; issuerCodes: string[]; departments: string[] }[] };
    try {
      manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    } catch {
      return 0;
    }
    if ((await this.redis.hlen(this.k('anchors'))) > 0) return 0;
    let n = 0;
    for (const a of manifest.anchors ?? []) {
      await this.addAnchor(readFileSync(join(dir, a.file), 'utf8'), a.issuerCodes, a.departments, `seed:${a.file}`);
      n++;
    }
    if (n) this.log.info({ anchors: n }, 'seed trust anchors installed');
    return n;
  }

  async addAnchor(pem: string, issuerCodes: unknown, departments: unknown, by: string): Promise<AnchorView> {
    let cert: Cert;
    try {
      const certs = parseCertsPem(pem);
      if (certs.length !== 1) throw new TrustError('INVALID', 'exactly one certificate, please', 'pem');
      cert = certs[0]!;
    } catch (e) {
      if (e instanceof TrustError) throw e;
      throw new TrustError('UNPARSABLE', `not a PEM certificate: ${(e as Error).message}`, 'pem');
    }
    if (!cert.isCA) throw new TrustError('NOT_A_CA', 'the certificate is not a CA (basicConstraints CA:TRUE): it cannot be a trust anchor', 'pem');
    if (!Array.isArray(issuerCodes) || !issuerCodes.every((c) => typeof c === 'string' && /^[0-9A-Z]{18}$/.test(c))) throw new TrustError('INVALID', 'a list of 18-character issuer codes', 'issuerCodes');
    if (!Array.isArray(departments) || !departments.every((d) => typeof d === 'string' && isDepartment(d))) throw new TrustError('INVALID', 'a list of departments (si, tax, ps, inv)', 'departments');
    if (!issuerCodes.length && !departments.length) throw new TrustError('INVALID', 'bind the anchor to at least one issuer code or department', 'issuerCodes');
    const id = cert.fingerprintSha256.slice(0, 16);
    const stored: StoredAnchor = { pem, issuerCodes: issuerCodes as string[], departments: departments as DepartmentId[], addedBy: by, addedAt: new Date().toISOString() };
    await this.redis.multi().hset(this.k('anchors'), id, JSON.stringify(stored)).incr(this.k('rev')).exec();
    await this.refresh(true);
    return this.views.anchors.find((a) => a.id === id)!;
  }

  async removeAnchor(id: string): Promise<AnchorView | null> {
    const before = this.views.anchors.find((a) => a.id === id) ?? null;
    const n = await this.redis.hdel(this.k('anchors'), id);
    if (!n) return null;
    await this.redis.incr(this.k('rev'));
    await this.refresh(true);
    return before;
  }

  async addCrl(input: { pem?: unknown; der?: unknown }, by: string): Promise<CrlView> {
    let der: Buffer;
    if (typeof input.pem === 'string') der = pemToDer(input.pem);
    else if (typeof input.der === 'string') der = Buffer.from(input.der, 'base64');
    else throw new TrustError('INVALID', 'give the CRL as {"pem": ...} or {"der": Base64}', 'pem');
    let crl: Crl;
    try {
      crl = parseCrl(der);
    } catch (e) {
      throw new TrustError('UNPARSABLE', `not a CRL: ${(e as Error).message}`, input.pem ? 'pem' : 'der');
    }
    await this.loadIntermediates(); // another process may have verified the chain that taught us its issuer
    const signers = [...this.set.anchors.map((a) => a.cert), ...this.known.values()];
    if (!signers.some((c) => c.subjectDer.equals(crl.issuerDer) && verifyWith(c, crl.sigAlg, crl.tbs, crl.signature)))
      throw new TrustError('CRL_SIGNER_UNKNOWN', 'the CRL is not signed by a known anchor or intermediate', input.pem ? 'pem' : 'der');
    const id = createHash('sha256').update(der).digest('hex').slice(0, 16);
    await this.redis.multi().hset(this.k('crls'), id, JSON.stringify({ der: der.toString('base64'), addedBy: by, addedAt: new Date().toISOString() })).incr(this.k('rev')).exec();
    await this.refresh(true);
    return this.views.crls.find((c) => c.id === id)!;
  }

  /** Intermediates of verified chains: they may sign CRLs the admin adds later. */
  async rememberIntermediates(certs: Cert[]): Promise<void> {
    for (const c of certs) {
      if (!c.isCA || this.known.has(c.fingerprintSha256)) continue;
      this.known.set(c.fingerprintSha256, c);
      await this.redis.hset(this.k('intermediates'), c.fingerprintSha256, c.der.toString('base64'));
    }
  }

  private async loadIntermediates(): Promise<void> {
    for (const [fp, b64] of Object.entries(await this.redis.hgetall(this.k('intermediates')))) {
      if (this.known.has(fp)) continue;
      try {
        this.known.set(fp, parseCert(Buffer.from(b64, 'base64')));
      } catch {
        /* ignore a broken cache entry */
      }
    }
  }

  async refresh(force = false): Promise<boolean> {
    const rev = await this.redis.get(this.k('rev'));
    if (!force && rev === this.rev) return false;
    const [anchorsRaw, crlsRaw] = await Promise.all([this.redis.hgetall(this.k('anchors')), this.redis.hgetall(this.k('crls'))]);
    await this.loadIntermediates();
    const anchors: Anchor[] = [];
    const anchorViews: AnchorView[] = [];
    for (const [id, json] of Object.entries(anchorsRaw)) {
      try {
        const s = JSON.parse(json) as StoredAnchor;
        const cert = parseCertsPem(s.pem)[0]!;
        anchors.push({ id, cert, issuerCodes: s.issuerCodes, departments: s.departments });
        anchorViews.push({ id, subject: cert.x509.subject, fingerprintSha256: cert.fingerprintSha256, notBefore: cert.notBefore.toISOString(), notAfter: cert.notAfter.toISOString(), issuerCodes: s.issuerCodes, departments: s.departments, addedBy: s.addedBy, addedAt: s.addedAt });
      } catch (e) {
        this.log.error({ anchorId: id, err: (e as Error).message }, 'stored trust anchor does not parse; ignored');
      }
    }
    const crls: Crl[] = [];
    const crlViews: CrlView[] = [];
    const issuers = [...anchors.map((a) => a.cert), ...this.known.values()];
    for (const [id, json] of Object.entries(crlsRaw)) {
      try {
        const crl = parseCrl(Buffer.from((JSON.parse(json) as { der: string }).der, 'base64'));
        crls.push(crl);
        const issuer = issuers.find((c) => c.subjectDer.equals(crl.issuerDer));
        crlViews.push({ id, issuer: issuer?.x509.subject ?? '(unknown issuer)', thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate?.toISOString() ?? null, stale: !!crl.nextUpdate && crl.nextUpdate < new Date(), revokedCount: crl.revoked.size });
      } catch (e) {
        this.log.error({ crlId: id, err: (e as Error).message }, 'stored CRL does not parse; ignored');
      }
    }
    for (const v of crlViews) if (v.stale) this.log.warn({ crlId: v.id, issuer: v.issuer, nextUpdate: v.nextUpdate }, 'CRL past its nextUpdate: load a fresh one');
    this.set = { anchors, crls };
    this.views = { anchors: anchorViews, crls: crlViews };
    this.rev = rev;
    return true;
  }

  startReloading(intervalMs: number): void {
    this.timer = setInterval(() => void this.refresh().catch((e) => this.log.warn({ err: (e as Error).message }, 'trust store reload failed; keeping the loaded one')), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

