import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { settingsMarkdown } from '../../scripts/settings-table.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

it('the README lists every setting with its environment variable, as the schema has them', () => {
  const section = /<!-- settings:start[^>]*-->\n([\s\S]*?)\n<!-- settings:end -->/.exec(readme);
  expect(section, 'settings markers in README.md').not.toBeNull();
  expect(section![1]).toBe(settingsMarkdown());
});

it('CI runs exactly the README test commands: npm test, then the reliability suite', () => {
  expect(readme).toContain('npm test ');
  expect(readme).toContain('`npm run test:reliability`');
  const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');
  const runs = ci.split('\n').filter((l) => /^npm (test|run)\b/.test(l.trim()));
  expect(runs).toEqual(['npm test', 'npm run test:reliability']);
});
