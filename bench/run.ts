/**
 * `npm run bench`: every benchmark with its baseline measured in the same run; results printed as
 * ratios with the machine they came from, and saved to bench/results/<time>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { benchMapping } from './mapping.js';
import { benchMaterials } from './materials.js';
import { benchLicences } from './licences.js';

process.chdir(fileURLToPath(new URL('..', import.meta.url)));
const ms = Number(process.env.BENCH_MS ?? 2000);
const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` };

const results = [benchMapping(ms)];
const licences = benchLicences(ms);
process.stdout.write(
  `licence verification, RSA-2048 CMS: full ${Math.round(licences.fullPerSecond).toLocaleString('en')} /s; ` +
    `bare crypto.verify of the same signature ${Math.round(licences.bareVerifyPerSecond).toLocaleString('en')} /s ` +
    `(full = ${licences.fullVsBare.toFixed(2)}× bare; target ≥ 0.5×); node-forge RSA verify ${Math.round(licences.forgeVerifyPerSecond).toLocaleString('en')} /s ` +
    `(bare = ${licences.bareVsForge.toFixed(1)}× forge)\n`,
);
const materials = await benchMaterials();

process.stdout.write(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, node ${machine.node}\n\n`);
for (const r of results) {
  process.stdout.write(`${r.name}: ${Math.round(r.opsPerSecond).toLocaleString('en')} /s on one core\n`);
  process.stdout.write(`  baseline, ${r.baseline}: ${Math.round(r.baselineOpsPerSecond).toLocaleString('en')} /s\n`);
  process.stdout.write(`  ratio: ${r.ratio.toFixed(2)}× the baseline\n`);
}
process.stdout.write(
  `\nmaterial push, ${materials.sizeMiB} MiB to the inv simulator: gateway ${materials.gatewayMBps.toFixed(1)} MB/s, ` +
    `plain streamed upload ${materials.plainMBps.toFixed(1)} MB/s, ratio ${materials.ratio.toFixed(2)}×; ` +
    `gateway peak RSS ${materials.gatewayPeakRssMB.toFixed(0)} MB (bound ${materials.rssBoundMB} MB: ${materials.gatewayPeakRssMB < materials.rssBoundMB ? 'within' : 'EXCEEDED'})\n`,
);
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), machine, results, licences, materials }, null, 2));
process.stdout.write(`\nsaved ${file}\n`);
