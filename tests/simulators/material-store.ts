/**
 * What a simulated department keeps of uploaded materials: chunks on disk (so a 1 GiB upload does
 * not live in memory), how often each chunk was sent, and the files it assembled and verified with
 * its own SHA-256.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface StoredFile {
  key: string;
  fileId: string;
  size: number;
  sha256: string;
}

export class MaterialStore {
  readonly dir = mkdtempSync(join(tmpdir(), 'gw-sim-materials-'));
  /** key → index → times received */
  readonly puts = new Map<string, Map<number, number>>();
  private sizes = new Map<string, Map<number, number>>();
  readonly files = new Map<string, StoredFile>();
  /** Uploads that were asked to assemble but did not match (never completed). */
  readonly rejected: string[] = [];

  private keyDir(key: string) {
    return join(this.dir, createHash('sha1').update(key).digest('hex'));
  }

  putChunk(key: string, index: number, data: Buffer): void {
    const d = this.keyDir(key);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, String(index)), data);
    const m = this.puts.get(key) ?? new Map<number, number>();
    m.set(index, (m.get(index) ?? 0) + 1);
    this.puts.set(key, m);
    const s = this.sizes.get(key) ?? new Map<number, number>();
    s.set(index, data.length);
    this.sizes.set(key, s);
  }

  held(key: string): number[] {
    return [...(this.sizes.get(key)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /** Total times any chunk of `key` was sent, and the most any one chunk was. */
  sendCount(key: string): { total: number; max: number } {
    const m = [...(this.puts.get(key)?.values() ?? [])];
    return { total: m.reduce((a, b) => a + b, 0), max: Math.max(0, ...m) };
  }

  /** SHA-256 and size of chunks 0..count-1 in order, read from disk; null if one is missing. */
  async assemble(key: string, count: number): Promise<{ sha256: string; size: number } | null> {
    const sizes = this.sizes.get(key);
    if (!sizes) return null;
    const h = createHash('sha256');
    let size = 0;
    for (let i = 0; i < count; i++) {
      if (!sizes.has(i)) return null;
      for await (const c of createReadStream(join(this.keyDir(key), String(i)))) {
        h.update(c as Buffer);
        size += (c as Buffer).length;
      }
    }
    return { sha256: h.digest('hex'), size };
  }

  missing(key: string, count: number): number[] {
    const s = this.sizes.get(key);
    return Array.from({ length: count }, (_, i) => i).filter((i) => !s?.has(i));
  }

  discard(key: string): void {
    this.sizes.delete(key);
    rmSync(this.keyDir(key), { recursive: true, force: true });
  }

  /** Verifies the assembled chunks against `sha256`; stores the file if they match. */
  async complete(key: string, count: number, sha256: string, size?: number): Promise<StoredFile | 'missing' | 'mismatch'> {
    if (this.missing(key, count).length) return 'missing';
    const a = await this.assemble(key, count);
    if (!a || a.sha256 !== sha256.toLowerCase() || (size !== undefined && a.size !== size)) {
      this.rejected.push(key);
      this.discard(key);
      return 'mismatch';
    }
    const f = { key, fileId: `F${randomBytes(6).toString('hex')}`, size: a.size, sha256: a.sha256 };
    this.files.set(key, f);
    return f;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
