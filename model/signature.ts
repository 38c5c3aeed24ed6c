/**
 * The timestamped HMAC signature used by inv's webhooks (X-Inv-Signature) and by the gateway's own
 * events to the platform (X-Gateway-Signature): `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + raw body)>`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** `t=<unix seconds>,v1=<hex>`; several v1 values are allowed (secret rotation). */
export function verifySignatureHeader(
  header: string | string[] | undefined,
  raw: Buffer,
  secret: string,
  nowMs: number,
  toleranceSeconds: number,
): { ok: true } | { ok: false; message: string } {
  if (typeof header !== 'string' || !header) return { ok: false, message: 'signature header missing' };
  let t: string | undefined;
  const sigs: string[] = [];
  for (const part of header.split(',')) {
    const [k, v] = part.trim().split('=', 2);
    if (k === 't') t = v;
    else if (k === 'v1' && v) sigs.push(v);
  }
  if (!t || !/^\d{1,12}$/.test(t) || !sigs.length) return { ok: false, message: 'signature header malformed' };
  if (Math.abs(nowMs / 1000 - Number(t)) > toleranceSeconds) return { ok: false, message: 'signature timestamp outside the allowed window' };
  const expected = createHmac('sha256', secret).update(`${t}.`).update(raw).digest();
  const good = sigs.some((s) => /^[0-9a-f]{64}$/i.test(s) && timingSafeEqual(Buffer.from(s, 'hex'), expected));
  return good ? { ok: true } : { ok: false, message: 'signature does not match' };
}

export function signatureHeader(raw: Buffer | string, secret: string, nowMs = Date.now()): string {
  const t = Math.floor(nowMs / 1000);
  const v1 = createHmac('sha256', secret).update(`${t}.`).update(raw).digest('hex');
  return `t=${t},v1=${v1}`;
}
