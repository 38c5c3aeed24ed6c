/** Prints the README's configuration table from the config schema: `npx tsx scripts/settings-table.ts`. */
import { settingsTable } from '../gateway/config.js';

export function settingsMarkdown(): string {
  const rows = settingsTable().map((s) => {
    const def = s.secret ? '*(secret)*' : s.default === undefined ? '' : `\`${JSON.stringify(s.default)}\``;
    return `| \`${s.path}\` | \`${s.env}\` | ${def} |`;
  });
  return ['| setting | environment variable | default |', '| --- | --- | --- |', ...rows].join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) process.stdout.write(`${settingsMarkdown()}\n`);
