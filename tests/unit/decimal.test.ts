import { describe, expect, it } from 'vitest';
import { DecimalFormatError, shiftDecimal, yuanToWan } from '../../model/decimal.js';

describe('yuan → 万元, exact', () => {
  it.each([
    ['123456789.00', '12345.6789'],
    ['0', '0.0000'],
    ['1', '0.0001'],
    ['0.49', '0.0000'],
    ['0.5', '0.0001'], // half rounds away from zero (四舍五入)
    ['-0.5', '-0.0001'],
    ['12345678901234567890.12', '1234567890123456.7890'], ['99999999999999999999.99', '10000000000000000.0000'], // beyond float precision
    ['10000', '1.0000'],
    ['  250000.5 ', '25.0001'],
  ])('%s yuan is %s 万元', (yuan, wan) => {
    expect(yuanToWan(yuan)).toBe(wan);
  });

  it('a float would be wrong where this is right', () => {
    // 0.1 + 0.2 style trap: 1234567.89 / 10000 = 123.456789 → 123.4568
    expect(yuanToWan('1234567.89')).toBe('123.4568');
    expect(shiftDecimal('0.015', 0, 2)).toBe('0.02'); // a float rounds 0.015 to 0.01
  });

  it('shifts the other way and to other places', () => {
    expect(shiftDecimal('12.3456', -4, 0)).toBe('123456');
    expect(shiftDecimal('123456789.00', 4, 2)).toBe('12345.68');
  });

  it('refuses what is not a decimal number', () => {
    for (const bad of ['', '1e5', '12,345.00', '¥100', '1.2.3', 'NaN', '0x10', '1.1234567'])
      expect(() => yuanToWan(bad), bad).toThrow(DecimalFormatError);
  });
});
