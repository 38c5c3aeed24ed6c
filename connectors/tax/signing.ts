/**
 * Request signing of dept-tax.md, both directions:
 *   string_to_sign = METHOD \n PATH_AND_QUERY \n X-Timestamp \n X-Nonce \n BODY_HASH
 *   X-Signature    = lower-case hex HMAC-SHA256(app_secret, string_to_sign)
 * BODY_HASH is the hex SHA-256 of the raw body (of "" when there is none), or X-Content-SHA256
 * for material uploads.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const sha256Hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export function stringToSign(method: string, pathAndQuery: string, timestamp: string, nonce: string, bodyHash: string): string {
  return `${method.toUpperCase()}\n${pathAndQuery}\n${timestamp}\n${nonce}\n${bodyHash}`;
}

export function sign(secret: string, sts: string): string {
  return createHmac('sha256', secret).update(sts, 'utf8').digest('hex');
}

/** 32 characters of [A-Za-z0-9] (the spec allows 16–64). */
export function newNonce(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(32)].map((b) => alphabet[b % 62]).join('');
}

export function signedHeaders(appId: string, secret: string, method: string, pathAndQuery: string, bodyHash: string, nowMs = Date.now(), nonce = newNonce()): Record<string, string> {
  const ts = String(nowMs);
  return { 'X-App-Id': appId, 'X-Timestamp': ts, 'X-Nonce': nonce, 'X-Signature': sign(secret, stringToSign(method, pathAndQuery, ts, nonce, bodyHash)) };
}

export type VerifyFault = { code: '1001' | '1002' | '1003'; message: string };

/** Verifies a signed request (the webhook direction). The caller checks the nonce against its replay store. */
export function verifySigned(
  headers: Record<string, string | string[] | undefined>,
  method: string,
  pathAndQuery: string,
  body: Buffer,
  o: { appId: string; secret: string; nowMs: number; toleranceSeconds: number },
): { ok: true; nonce: string; timestampMs: number } | { ok: false; fault: VerifyFault } {
  const h = (k: string) => {
    const v = headers[k];
    return typeof v === 'string' ? v : undefined;
  };
  const appId = h('x-app-id');
  const ts = h('x-timestamp');
  const nonce = h('x-nonce');
  const sig = h('x-signature');
  if (appId !== o.appId) return { ok: false, fault: { code: '1003', message: 'unknown app id' } };
  if (!ts || !/^\d{10,16}$/.test(ts) || !nonce || !/^[A-Za-z0-9]{16,64}$/.test(nonce) || !sig || !/^[0-9a-f]{64}$/.test(sig))
    return { ok: false, fault: { code: '1001', message: 'signature headers missing or malformed' } };
  if (Math.abs(o.nowMs - Number(ts)) > o.toleranceSeconds * 1000) return { ok: false, fault: { code: '1002', message: 'timestamp outside the allowed window' } };
  const expected = sign(o.secret, stringToSign(method, pathAndQuery, ts, nonce, sha256Hex(body)));
  if (!timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(sig, 'hex'))) return { ok: false, fault: { code: '1001', message: 'signature does not match' } };
  return { ok: true, nonce, timestampMs: Number(ts) };
}
