/** A minimal, strict DER reader: enough for X.509, CMS SignedData and CRLs. Throws DerError on anything malformed. */

export class DerError extends Error {}

export interface Node {
  /** The identifier octet (class, constructed bit, tag number < 31). */
  tag: number;
  /** Offsets into the buffer: the whole TLV, and the value. */
  start: number;
  valueStart: number;
  end: number;
  buf: Buffer;
}

export const TAG = { BOOLEAN: 0x01, INTEGER: 0x02, BIT_STRING: 0x03, OCTET_STRING: 0x04, NULL: 0x05, OID: 0x06, UTF8: 0x0c, SEQUENCE: 0x30, SET: 0x31, UTC_TIME: 0x17, GEN_TIME: 0x18 };

export function read(buf: Buffer, at = 0, limit = buf.length): Node {
  if (at + 2 > limit) throw new DerError('truncated header');
  const tag = buf[at]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used here');
  let len = buf[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError('unsupported length');
    if (p + n > limit) throw new DerError('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new DerError('truncated value');
  return { tag, start: at, valueStart: p, end: p + len, buf };
}

/** The only TLV in `buf`: trailing bytes are an error. */
export function readAll(buf: Buffer): Node {
  const n = read(buf);
  if (n.end !== buf.length) throw new DerError('trailing bytes after the structure');
  return n;
}

export function children(n: Node): Node[] {
  if (!(n.tag & 0x20)) throw new DerError('not a constructed value');
  const out: Node[] = [];
  for (let p = n.valueStart; p < n.end; ) {
    const c = read(n.buf, p, n.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

export const value = (n: Node) => n.buf.subarray(n.valueStart, n.end);
export const whole = (n: Node) => n.buf.subarray(n.start, n.end);

export function expect(n: Node | undefined, tag: number, what: string): Node {
  if (!n || n.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found ${n ? `0x${n.tag.toString(16)}` : 'nothing'}`);
  return n;
}

/** OIDs recur in every structure: decoded once each. */
const oidCache = new Map<string, string>();

export function oid(n: Node): string {
  const v = value(expect(n, TAG.OID, 'OID'));
  if (!v.length) throw new DerError('empty OID');
  const key = v.toString('latin1');
  const hit = oidCache.get(key);
  if (hit) return hit;
  const decoded = decodeOid(v);
  if (oidCache.size < 1000) oidCache.set(key, decoded);
  return decoded;
}

function decodeOid(v: Buffer): string {
  const parts: number[] = [];
  let acc = 0;
  for (const b of v) {
    acc = acc * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(acc);
      acc = 0;
    }
  }
  const first = parts.shift()!;
  return [first < 80 ? Math.floor(first / 40) : 2, first < 80 ? first % 40 : first - 80, ...parts].join('.');
}

/** An INTEGER as lower-case hex without leading zero bytes (as certificate serials are shown). */
export function intHex(n: Node): string {
  let v = value(expect(n, TAG.INTEGER, 'INTEGER'));
  while (v.length > 1 && v[0] === 0) v = v.subarray(1);
  return v.toString('hex');
}

export function time(n: Node): Date {
  const s = value(n).toString('latin1');
  let m: RegExpExecArray | null;
  if (n.tag === TAG.UTC_TIME && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    const y = Number(m[1]) >= 50 ? 1900 + Number(m[1]) : 2000 + Number(m[1]);
    return new Date(Date.UTC(y, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  if (n.tag === TAG.GEN_TIME && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  throw new DerError('not a DER time');
}

/** A BIT STRING's bytes (the unused-bits octet dropped) and its unused bit count. */
export function bits(n: Node): { bytes: Buffer; unused: number } {
  const v = value(expect(n, TAG.BIT_STRING, 'BIT STRING'));
  if (!v.length || v[0]! > 7) throw new DerError('bad BIT STRING');
  return { bytes: v.subarray(1), unused: v[0]! };
}
