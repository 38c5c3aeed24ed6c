/**
 * Exact decimal arithmetic on strings through BigInt: money never passes through a float.
 */

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

export class DecimalFormatError extends Error {}

/** Parses a decimal string into an integer count of 10^-scale units. Refuses more digits than scale. */
function toScaled(value: string, scale: number): bigint {
  const m = DECIMAL.exec(value);
  if (!m) throw new DecimalFormatError(`"${value}" is not a decimal number`);
  const [, sign, int, frac = ''] = m;
  if (frac.length > scale) throw new DecimalFormatError(`"${value}" has more than ${scale} decimal places`);
  const n = BigInt(int! + frac.padEnd(scale, '0'));
  return sign === '-' ? -n : n;
}

function fromScaled(n: bigint, scale: number): string {
  const neg = n < 0n;
  const digits = (neg ? -n : n).toString().padStart(scale + 1, '0');
  const int = digits.slice(0, digits.length - scale);
  const frac = digits.slice(digits.length - scale);
  return (neg ? '-' : '') + (scale > 0 ? `${int}.${frac}` : int);
}

/**
 * Divides a decimal string by 10^shift and renders it with `places` decimals, rounding half away
 * from zero (四舍五入). yuan → 万元 is shift 4: "123456789.00" → "12345.6789".
 */
export function shiftDecimal(value: string, shift: number, places: number, inputScale = 6): string {
  const scaled = toScaled(value.trim(), inputScale); // units of 10^-inputScale
  // value / 10^shift expressed in units of 10^-places: scaled * 10^places / 10^(inputScale+shift)
  const num = scaled * 10n ** BigInt(places);
  const den = 10n ** BigInt(inputScale + shift);
  const neg = num < 0n;
  const abs = neg ? -num : num;
  let q = abs / den;
  if ((abs % den) * 2n >= den) q += 1n;
  return fromScaled(neg ? -q : q, places);
}

export function yuanToWan(yuan: string, places = 4): string {
  return shiftDecimal(yuan, 4, places);
}
