/** Check digits of identifiers.md: 公民身份号码, 统一社会信用代码, 投资项目代码. Pure functions. */

export type IdFault =
  | 'LENGTH'
  | 'CHARACTERS'
  | 'BIRTH_DATE'
  | 'BIRTH_DATE_IN_FUTURE'
  | 'CHECK_DIGIT'
  | 'FORMAT';

const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = '10X98765432';

export interface IdCardInfo {
  birthDate: string; // YYYY-MM-DD
  gender: 'male' | 'female';
}

export function isRealDate(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const dt = new Date(Date.UTC(y, m - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d;
}

/** Validates a GB 11643-1999 number; `today` is YYYY-MM-DD (Beijing date) for the future check. */
export function checkIdCard(id: string, today: string): { ok: true; info: IdCardInfo } | { ok: false; fault: IdFault } {
  if (id.length !== 18) return { ok: false, fault: 'LENGTH' };
  if (!/^\d{17}[\dX]$/.test(id)) return { ok: false, fault: 'CHARACTERS' };
  const y = Number(id.slice(6, 10));
  const m = Number(id.slice(10, 12));
  const d = Number(id.slice(12, 14));
  if (!isRealDate(y, m, d)) return { ok: false, fault: 'BIRTH_DATE' };
  const birthDate = `${id.slice(6, 10)}-${id.slice(10, 12)}-${id.slice(12, 14)}`;
  if (birthDate > today) return { ok: false, fault: 'BIRTH_DATE_IN_FUTURE' };
  let s = 0;
  for (let i = 0; i < 17; i++) s += Number(id[i]) * ID_WEIGHTS[i]!;
  if (ID_CHECK[s % 11] !== id[17]) return { ok: false, fault: 'CHECK_DIGIT' };
  const gender = Number(id[16]) % 2 === 1 ? 'male' : 'female';
  return { ok: true, info: { birthDate, gender } };
}

const USCC_ALPHABET = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/** Validates a GB 32100-2015 code. `exceptions` are pilot codes known to fail the check digit. */
export function checkUscc(code: string, exceptions: ReadonlySet<string> = new Set()): { ok: true } | { ok: false; fault: IdFault } {
  if (code.length !== 18) return { ok: false, fault: 'LENGTH' };
  const values: number[] = [];
  for (const ch of code) {
    const v = USCC_ALPHABET.indexOf(ch);
    if (v < 0) return { ok: false, fault: 'CHARACTERS' };
    values.push(v);
  }
  let s = 0;
  for (let i = 0; i < 17; i++) s += values[i]! * USCC_WEIGHTS[i]!;
  let c = 31 - (s % 31);
  if (c === 31) c = 0;
  if (USCC_ALPHABET[c] !== code[17] && !exceptions.has(code)) return { ok: false, fault: 'CHECK_DIGIT' };
  return { ok: true };
}

/** The national investment project code: its check algorithm is unpublished, so form only. */
export function checkProjectCode(code: string): { ok: true } | { ok: false; fault: IdFault } {
  return /^\d{4}-\d{6}-\d{2}-\d{2}-\d{6}$/.test(code) ? { ok: true } : { ok: false, fault: 'FORMAT' };
}

/** Today's date in Beijing (UTC+8, no DST), as YYYY-MM-DD. */
export function beijingDate(now: Date = new Date()): string {
  return new Date(now.getTime() + 8 * 3600_000).toISOString().slice(0, 10);
}
