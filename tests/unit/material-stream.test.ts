import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { streamChunks } from '../../connectors/material-stream.js';

const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** A source that yields `data` in pieces of `piece` bytes (chunk boundaries never line up). */
const source = (data: Buffer, piece = 7) => Readable.from(Array.from({ length: Math.ceil(data.length / piece) }, (_, i) => data.subarray(i * piece, (i + 1) * piece)));

async function run(data: Buffer, declared: { size: number; sha256: string }, chunk: number, skip: number[] = []) {
  const got: { i: number; len: number; last: boolean }[] = [];
  const r = await streamChunks(source(data), declared, chunk, new Set(skip), async (i, c, last) => {
    got.push({ i, len: c.length, last });
    return { ok: true };
  });
  return { r, got };
}

describe('streamChunks', () => {
  it('cuts exact chunks, the last one short, and sends it last', async () => {
    const d = bytes(100);
    const { r, got } = await run(d, { size: 100, sha256: sha(d) }, 30);
    expect(r).toEqual({ ok: true, sent: 4, skipped: 0 });
    expect(got).toEqual([
      { i: 0, len: 30, last: false },
      { i: 1, len: 30, last: false },
      { i: 2, len: 30, last: false },
      { i: 3, len: 10, last: true },
    ]);
  });

  it('handles an exact multiple and an empty file', async () => {
    const d = bytes(60);
    expect((await run(d, { size: 60, sha256: sha(d) }, 30)).got.map((g) => [g.len, g.last])).toEqual([
      [30, false],
      [30, true],
    ]);
    const e = Buffer.alloc(0);
    expect((await run(e, { size: 0, sha256: sha(e) }, 30)).got).toEqual([{ i: 0, len: 0, last: true }]);
  });

  it('skips chunks the department holds', async () => {
    const d = bytes(100);
    const { r, got } = await run(d, { size: 100, sha256: sha(d) }, 30, [0, 2]);
    expect(r).toEqual({ ok: true, sent: 2, skipped: 2 });
    expect(got.map((g) => g.i)).toEqual([1, 3]);
  });

  it('never sends the last chunk of a file that does not match: hash, shorter, longer', async () => {
    const d = bytes(100);
    const wrongHash = await run(d, { size: 100, sha256: 'f'.repeat(64) }, 30);
    expect(wrongHash.r).toMatchObject({ ok: false, mismatch: { code: 'MATERIAL_HASH_MISMATCH' } });
    expect(wrongHash.got.some((g) => g.last)).toBe(false);
    const shorter = await run(d.subarray(0, 90), { size: 100, sha256: sha(d) }, 30);
    expect(shorter.r).toMatchObject({ ok: false, mismatch: { code: 'MATERIAL_SIZE_MISMATCH' } });
    expect(shorter.got.some((g) => g.last)).toBe(false);
    const longer = await run(bytes(130), { size: 100, sha256: sha(d) }, 30);
    expect(longer.r).toMatchObject({ ok: false, mismatch: { code: 'MATERIAL_SIZE_MISMATCH' } });
    expect(longer.got.some((g) => g.last)).toBe(false);
  });

  it('stops at a sender refusal and hands it back', async () => {
    const d = bytes(100);
    let calls = 0;
    const r = await streamChunks(source(d), { size: 100, sha256: sha(d) }, 30, new Set(), async () => (++calls === 2 ? { ok: false, stop: 'busy' } : { ok: true }));
    expect(r).toEqual({ ok: false, stop: 'busy' });
    expect(calls).toBe(2);
  });
});
