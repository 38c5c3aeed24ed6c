/** Rewrites the README's settings table from the config schema: `npx tsx scripts/update-readme-settings.ts`. */
import { readFileSync, writeFileSync } from 'node:fs';
import { settingsMarkdown } from './settings-table.js';

const file = new URL('../README.md', import.meta.url);
const text = readFileSync(file, 'utf8');
const next = text.replace(/(<!-- settings:start[^>]*-->\n)[\s\S]*?(\n<!-- settings:end -->)/, `$1${settingsMarkdown()}$2`);
writeFileSync(file, next);
