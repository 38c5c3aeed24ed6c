/**
 * Streams a material from the platform in fixed-size chunks, hashing and counting as it goes, and
 * never holds more than one chunk. The last chunk is held back until the whole file has matched
 * its declared size and SHA-256, so a department never receives a complete file that does not
 * match: a mismatch is found before the last chunk (the one that completes) is sent.
 */
import { createHash } from 'node:crypto';
import type { DepartmentFault } from '../model/outcome.js';

export class PlatformFileError extends Error {
  constructor(
    readonly status: number | null,
    message: string,
  ) {
    super(message);
  }
}

export type ChunkSender = (index: number, chunk: Buffer, isLast: boolean) => Promise<{ ok: true } | { ok: false; stop: unknown }>;

export type StreamResult =
  | { ok: true; sent: number; skipped: number }
  | { ok: false; mismatch: DepartmentFault }
  | { ok: false; stop: unknown };

export function chunkCount(size: number, chunkSize: number): number {
  return Math.max(1, Math.ceil(size / chunkSize));
}

/**
 * Reads `source` and calls `send` for every chunk whose index is not in `skip`, in order. Verifies
 * size and SHA-256 before the last chunk is sent. A sender's `stop` (a department refusal) ends
 * the stream and is handed back.
 */
export async function streamChunks(
  source: NodeJS.ReadableStream,
  declared: { size: number; sha256: string },
  chunkSize: number,
  skip: ReadonlySet<number>,
  send: ChunkSender,
): Promise<StreamResult> {
  const total = chunkCount(declared.size, chunkSize);
  const hash = createHash('sha256');
  let seen = 0;
  let index = 0;
  let sent = 0;
  let skipped = 0;
  let parts: Buffer[] = [];
  let partLen = 0;
  const destroy = () => (source as unknown as { destroy?: () => void }).destroy?.();

  const flush = async (isLast: boolean): Promise<StreamResult | null> => {
    const chunk = parts.length === 1 ? parts[0]! : Buffer.concat(parts, partLen);
    parts = [];
    partLen = 0;
    const i = index++;
    if (isLast) {
      const digest = hash.digest('hex');
      if (seen !== declared.size) return { ok: false, mismatch: { code: 'MATERIAL_SIZE_MISMATCH', message: `the platform file has ${seen} bytes, the case declares ${declared.size}` } };
      if (digest !== declared.sha256.toLowerCase()) return { ok: false, mismatch: { code: 'MATERIAL_HASH_MISMATCH', message: `the platform file's SHA-256 is ${digest}, the case declares ${declared.sha256}` } };
    }
    if (skip.has(i)) {
      skipped++;
      return null;
    }
    const r = await send(i, chunk, isLast);
    if (!r.ok) return { ok: false, stop: r.stop };
    sent++;
    return null;
  };

  for await (const data of source as AsyncIterable<Buffer | string>) {
    let buf = typeof data === 'string' ? Buffer.from(data) : data;
    seen += buf.length;
    hash.update(buf);
    if (seen > declared.size) {
      destroy();
      return { ok: false, mismatch: { code: 'MATERIAL_SIZE_MISMATCH', message: `the platform file is larger than the ${declared.size} bytes the case declares` } };
    }
    while (buf.length) {
      const take = Math.min(chunkSize - partLen, buf.length);
      parts.push(buf.subarray(0, take));
      partLen += take;
      buf = buf.subarray(take);
      // A full chunk that is not the last one goes now; the last waits for the end of the stream.
      if (partLen === chunkSize && index < total - 1) {
        const r = await flush(false);
        if (r) {
          destroy();
          return r;
        }
      }
    }
  }
  if (index !== total - 1) return { ok: false, mismatch: { code: 'MATERIAL_SIZE_MISMATCH', message: `the platform file has ${seen} bytes, the case declares ${declared.size}` } };
  const r = await flush(true);
  return r ?? { ok: true, sent, skipped };
}
