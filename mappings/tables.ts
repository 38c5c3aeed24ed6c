/**
 * Shared code tables (identifiers.md, "Codes used in translation"). Data, not code: a mapping names
 * a table by key, or carries an inline one.
 */
export const SHARED_TABLES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'gender.si': { male: '1', female: '2', unknown: '9' },
  'gender.ps': { male: '1', female: '2', unknown: '0' },
  // 201 居民身份证, 227 中国护照, 208 外国护照 (dept-tax.md). The unified PASSPORT is taken as a Chinese
  // passport; a foreign one is FOREIGN_PASSPORT in the item's form (the unified idType has no such value).
  'idType.tax': { ID_CARD: '201', PASSPORT: '227', FOREIGN_PASSPORT: '208' },
  /** Unified ethnicity codes are GB 3304 already; the table checks the value is one of them. */
  ethnicity: Object.fromEntries(
    Array.from({ length: 56 }, (_, i) => {
      const code = String(i + 1).padStart(2, '0');
      return [code, code];
    }),
  ),
};
