import { describe, expect, it } from 'vitest';
import { beijingDate, checkIdCard, checkProjectCode, checkUscc } from '../../model/identifiers.js';

const TODAY = '2026-11-24';

describe('公民身份号码 (GB 11643-1999)', () => {
  it.each([
    ['11010519491231002X', '1949-12-31', 'female'],
    ['440524188001010014', '1880-01-01', 'male'],
    ['110101199003074477', '1990-03-07', 'male'],
  ])('accepts the spec example %s and reads birth date and gender from it', (id, birth, gender) => {
    expect(checkIdCard(id, TODAY)).toEqual({ ok: true, info: { birthDate: birth, gender } });
  });

  it('refuses every single-digit change of a valid number (check digit)', () => {
    const id = '110101199003074477';
    for (let i = 14; i < 17; i++) {
      const d = Number(id[i]);
      const bad = id.slice(0, i) + String((d + 1) % 10) + id.slice(i + 1);
      expect(checkIdCard(bad, TODAY)).toEqual({ ok: false, fault: 'CHECK_DIGIT' });
    }
    expect(checkIdCard('110101199003074478', TODAY)).toEqual({ ok: false, fault: 'CHECK_DIGIT' });
  });

  it('accepts only an upper-case X', () => {
    expect(checkIdCard('11010519491231002x', TODAY)).toEqual({ ok: false, fault: 'CHARACTERS' });
  });

  it('refuses a wrong length, letters, impossible and future birth dates', () => {
    expect(checkIdCard('11010519491231002', TODAY)).toEqual({ ok: false, fault: 'LENGTH' });
    expect(checkIdCard('1101051949123100X2', TODAY)).toEqual({ ok: false, fault: 'CHARACTERS' });
    // 1990-02-30 does not exist (check digit irrelevant: the date is refused first).
    expect(checkIdCard('110101199002304471', TODAY)).toEqual({ ok: false, fault: 'BIRTH_DATE' });
    expect(checkIdCard('110101199013014471', TODAY)).toEqual({ ok: false, fault: 'BIRTH_DATE' });
    // 2027-01-01 is after TODAY.
    expect(checkIdCard('110101202701014471', TODAY)).toEqual({ ok: false, fault: 'BIRTH_DATE_IN_FUTURE' });
  });

  it('knows leap days', () => {
    // 2000-02-29 and 2024-02-29 are real (check digits computed by hand); 1900-02-29 is not.
    expect(checkIdCard('110101200002290018', TODAY)).toEqual({ ok: true, info: { birthDate: '2000-02-29', gender: 'male' } });
    expect(checkIdCard('110101202402290024', TODAY)).toEqual({ ok: true, info: { birthDate: '2024-02-29', gender: 'female' } });
    expect(checkIdCard('110101190002290000', TODAY)).toEqual({ ok: false, fault: 'BIRTH_DATE' });
  });
});

describe('统一社会信用代码 (GB 32100-2015)', () => {
  it.each(['91350100M000100Y43', '91110000802100433B', '91440300708461136T'])('accepts the spec example %s', (code) => {
    expect(checkUscc(code)).toEqual({ ok: true });
  });

  it('refuses a changed check character and a changed body', () => {
    expect(checkUscc('91350100M000100Y44')).toEqual({ ok: false, fault: 'CHECK_DIGIT' });
    expect(checkUscc('91350100M000100Y53')).toEqual({ ok: false, fault: 'CHECK_DIGIT' });
  });

  it('refuses I, O, S, V, Z and lower case, and a wrong length, always', () => {
    for (const ch of ['I', 'O', 'S', 'V', 'Z', 'a']) expect(checkUscc(`91350100M000100Y4${ch}`)).toEqual({ ok: false, fault: 'CHARACTERS' });
    expect(checkUscc('91350100M000100Y4')).toEqual({ ok: false, fault: 'LENGTH' });
    // Exceptions never excuse characters or length.
    expect(checkUscc('91350100M000100Y4O', new Set(['91350100M000100Y4O']))).toEqual({ ok: false, fault: 'CHARACTERS' });
  });

  it('lets configured pilot codes through despite their check digit', () => {
    expect(checkUscc('91350100M000100Y44', new Set(['91350100M000100Y44']))).toEqual({ ok: true });
  });
});

describe('投资项目代码', () => {
  it('checks the form only', () => {
    expect(checkProjectCode('2019-640100-47-01-012345')).toEqual({ ok: true });
    for (const bad of ['2019-640100-47-01-01234', '2019640100-47-01-012345', '2019-640100-47-1-012345', 'A019-640100-47-01-012345', ' 2019-640100-47-01-012345'])
      expect(checkProjectCode(bad)).toEqual({ ok: false, fault: 'FORMAT' });
  });
});

describe('beijingDate', () => {
  it('is UTC+8', () => {
    expect(beijingDate(new Date('2026-11-24T15:59:59Z'))).toBe('2026-11-24');
    expect(beijingDate(new Date('2026-11-24T16:00:00Z'))).toBe('2026-11-25');
  });
});
