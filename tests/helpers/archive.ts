/**
 * The platform's archive (归档电子材料) as a real HTTP server: deterministic pseudo-random files of
 * any size generated on the fly (AES-CTR of zeros, so 1 GiB never sits in memory), a bearer
 * credential, throttling (to kill a worker mid-upload), files that are missing (404) or whose bytes
 * differ from what the case declares.
 */
import { createCipheriv, createHash } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import type { MaterialRef } from '../../model/case.js';

const BLOCK = 64 * 1024;

/** The bytes of file `seed`, `size` long, as a stream. `bytesPerSecond` throttles it. */
export function fileStream(seed: string, size: number, bytesPerSecond = 0): Readable {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(BLOCK);
  let left = size;
  let started = Date.now();
  let sent = 0;
  return new Readable({
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(BLOCK, left);
      const chunk = cipher.update(zeros.subarray(0, n));
      left -= n;
      sent += n;
      if (bytesPerSecond > 0) {
        const due = started + (sent / bytesPerSecond) * 1000;
        const wait = due - Date.now();
        if (wait > 0) {
          setTimeout(() => this.push(chunk), wait);
          return;
        }
      }
      this.push(chunk);
    },
  });
}

export async function fileSha256(seed: string, size: number): Promise<string> {
  const h = createHash('sha256');
  for await (const c of fileStream(seed, size)) h.update(c as Buffer);
  return h.digest('hex');
}

export class PlatformArchive {
  readonly token = 'archive-test-token';
  /** Paths answered 404. */
  readonly missing = new Set<string>();
  /** Paths whose served bytes differ from the declared hash (a different seed). */
  readonly corrupt = new Set<string>();
  bytesPerSecond = 0;
  readonly downloads = new Map<string, number>();
  private files = new Map<string, { seed: string; size: number }>();
  private server = http.createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${this.token}`) return res.writeHead(401).end();
    const path = (req.url ?? '').split('?')[0]!;
    const f = this.files.get(path);
    if (!f || this.missing.has(path)) return res.writeHead(404).end();
    this.downloads.set(path, (this.downloads.get(path) ?? 0) + 1);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(f.size) });
    const s = fileStream(this.corrupt.has(path) ? `${f.seed}-tampered` : f.seed, f.size, this.bytesPerSecond);
    s.pipe(res);
    res.on('close', () => s.destroy());
  });
  url = '';

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address();
    this.url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    return this.url;
  }

  /** Registers a file and returns the case's material reference for it (with its true SHA-256). */
  async material(caseNo: string, id: string, size: number, fileName = `${id}.pdf`, mediaType = 'application/pdf'): Promise<MaterialRef> {
    const path = `/archive/${caseNo}/${id}`;
    const seed = `${caseNo}/${id}`;
    this.files.set(path, { seed, size });
    return { id, name: `材料${id}`, fileName, mediaType, url: this.url + path, sha256: await fileSha256(seed, size), size };
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
