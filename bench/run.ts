/**
 * `npm run bench`: every benchmark with its baseline measured in the same run, on the same machine
 * and Redis; figures and ratios written to bench/results/latest.json and latest.md (with the
 * reliability suite's figures, when it has run), and printed.
 *
 * Knobs: BENCH_ONLY=mapping,licences,materials,flow; BENCH_MS (per micro-benchmark),
 * BENCH_MATERIAL_MIB (1024), BENCH_INTAKE_SECONDS (10), BENCH_E2E_CASES (10000),
 * BENCH_BACKLOGS (1000,10000,100000).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchMapping } from './mapping.js';
import { benchMaterials } from './materials.js';
import { benchLicences } from './licences.js';
import { benchFlow } from './flow.js';
import { machine, recordBench, REPORT_MD, type Figure } from './report.js';

process.chdir(fileURLToPath(new URL('..', import.meta.url)));
const only = new Set((process.env.BENCH_ONLY ?? 'mapping,licences,materials,flow').split(',').map((s) => s.trim()));
const ms = Number(process.env.BENCH_MS ?? 2000);
const say = (s: string) => process.stdout.write(`${s}\n`);
const m = machine();
say(`machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB; Node ${m.node}; Redis ${m.redis}`);

const figures: Figure[] = [];
const details: Record<string, unknown> = {};

if (only.has('mapping')) {
  const r = benchMapping(ms);
  details.mapping = r;
  figures.push({ name: 'mapping translations, one core', value: r.opsPerSecond, unit: '/s', baseline: { name: r.baseline, value: r.baselineOpsPerSecond }, ratio: r.ratio });
  say(`mapping: ${Math.round(r.opsPerSecond)}/s vs hand-written ${Math.round(r.baselineOpsPerSecond)}/s (${r.ratio.toFixed(2)}×)`);
}

if (only.has('licences')) {
  const l = benchLicences(ms);
  details.licences = l;
  figures.push(
    { name: 'licence verification, RSA-2048 CMS, full', value: l.fullPerSecond, unit: '/s', baseline: { name: 'bare crypto.verify of the same signature', value: l.bareVerifyPerSecond }, ratio: l.fullVsBare, goal: '≥ 0.5×', met: l.fullVsBare >= 0.5 },
    { name: 'bare crypto.verify', value: l.bareVerifyPerSecond, unit: '/s', baseline: { name: 'node-forge RSA verify', value: l.forgeVerifyPerSecond }, ratio: l.bareVsForge },
  );
  say(`licences: full ${Math.round(l.fullPerSecond)}/s vs bare ${Math.round(l.bareVerifyPerSecond)}/s (${l.fullVsBare.toFixed(2)}×); bare = ${l.bareVsForge.toFixed(1)}× node-forge`);
}

// The process benchmarks run the built gateway, as production does.
if (only.has('materials') || only.has('flow')) execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });

if (only.has('materials')) {
  const mt = await benchMaterials();
  details.materials = mt;
  figures.push(
    { name: `material push, ${mt.sizeMiB} MiB`, value: mt.gatewayMBps, unit: 'MB/s', baseline: { name: 'plain streamed upload of the same file', value: mt.plainMBps }, ratio: mt.ratio },
    { name: 'gateway peak RSS during the push', value: mt.gatewayPeakRssMB, unit: 'MB', goal: `< ${mt.rssBoundMB} MB`, met: mt.gatewayPeakRssMB < mt.rssBoundMB },
  );
  say(`materials: ${mt.gatewayMBps.toFixed(1)} MB/s vs plain ${mt.plainMBps.toFixed(1)} MB/s (${mt.ratio.toFixed(2)}×), peak RSS ${mt.gatewayPeakRssMB.toFixed(0)} MB`);
}

if (only.has('flow')) {
  const f = await benchFlow({
    intakeSeconds: Number(process.env.BENCH_INTAKE_SECONDS ?? 10),
    endToEndCases: Number(process.env.BENCH_E2E_CASES ?? 10_000),
    backlogs: (process.env.BENCH_BACKLOGS ?? '1000,10000,100000').split(',').map(Number),
    ...(process.env.BENCH_FLOW_PARTS ? { parts: new Set(process.env.BENCH_FLOW_PARTS.split(',')) } : {}),
  });
  details.flow = f;
  const i = f.intake;
  if (i) figures.push(
    { name: 'intake, POST /v1/cases at 64 connections', value: i.gateway.perSecond, unit: 'cases/s', baseline: { name: 'bare Queue.add, 64 in flight', value: i.bare.perSecond }, ratio: i.ratio, goal: '≥ 0.5×', met: i.ratio >= 0.5 },
    { name: 'intake vs the HTTP floor', value: i.gateway.perSecond, unit: 'cases/s', baseline: { name: 'bare Fastify process answering 202 to the same POSTs', value: i.httpFloor.perSecond }, ratio: i.ofHttpFloor, note: 'the ceiling of any one-process HTTP intake on this machine' },
    {
      name: 'intake, cases per CPU-second of the API process',
      value: 1e6 / i.cpu.apiMicrosPerCase,
      unit: 'cases/CPU-s',
      baseline: { name: 'bare Queue.add jobs per CPU-second of its process', value: 1e6 / i.cpu.bareMicrosPerJob },
      ratio: i.cpu.bareMicrosPerJob / i.cpu.apiMicrosPerCase,
      note: `${i.cpu.apiMicrosPerCase.toFixed(0)} µs of CPU per case vs ${i.cpu.bareMicrosPerJob.toFixed(0)} µs per job; Redis ${i.cpu.redisMicrosPerCase.toFixed(0)} vs ${i.cpu.redisMicrosPerBareJob.toFixed(0)} µs`,
    },
    { name: 'intake p50', value: i.gateway.p50, unit: 'ms', baseline: { name: 'bare Queue.add p50', value: i.bare.p50 } },
    { name: 'intake p99', value: i.gateway.p99, unit: 'ms', baseline: { name: 'bare Queue.add p99', value: i.bare.p99 }, goal: '< 25 ms', met: i.gateway.p99 < 25 },
  );
  const r = f.replicated;
  if (r)
    figures.push(
      { name: 'intake with redis.waitReplicas 1 (one replica)', value: r.waiting.perSecond, unit: 'cases/s', baseline: { name: 'the same with waitReplicas 0', value: r.notWaiting.perSecond }, ratio: r.ratio },
      { name: 'intake p99 with redis.waitReplicas 1', value: r.waiting.p99, unit: 'ms', baseline: { name: 'p99 with waitReplicas 0', value: r.notWaiting.p99 } },
    );
  if (f.endToEnd) figures.push(
    {
      name: `end to end, ${f.endToEnd.gateway.cases.toLocaleString('en')} cases (${f.endToEnd.gateway.routes.toLocaleString('en')} routes) over four departments`,
      value: f.endToEnd.gateway.perSecond,
      unit: 'cases/s',
      baseline: { name: 'no-op BullMQ worker draining as many jobs', value: f.endToEnd.noop.perSecond },
      ratio: f.endToEnd.ratio,
    },
  );
  const first = f.growth?.[0];
  for (const g of f.growth ?? [])
    figures.push(
      { name: `intake with ${g.waiting.toLocaleString('en')} cases waiting`, value: g.intakePerSecond, unit: 'cases/s', ...(first ? { baseline: { name: `with ${first.waiting.toLocaleString('en')} waiting`, value: first.intakePerSecond }, ratio: g.intakePerSecond / first.intakePerSecond } : {}), note: `p99 ${g.intakeP99} ms` },
      { name: `inv end to end with ${g.waiting.toLocaleString('en')} cases waiting`, value: g.endToEndPerSecond, unit: 'cases/s', ...(first ? { baseline: { name: `with ${first.waiting.toLocaleString('en')} waiting`, value: first.endToEndPerSecond }, ratio: g.endToEndPerSecond / first.endToEndPerSecond } : {}) },
      {
        name: `worker CPU per inv case end to end with ${g.waiting.toLocaleString('en')} waiting`,
        value: g.endToEndCpuMicrosPerCase.worker,
        unit: 'µs',
        ...(first ? { baseline: { name: `with ${first.waiting.toLocaleString('en')} waiting`, value: first.endToEndCpuMicrosPerCase.worker }, ratio: g.endToEndCpuMicrosPerCase.worker / first.endToEndCpuMicrosPerCase.worker } : {}),
        note: `API ${g.endToEndCpuMicrosPerCase.api.toFixed(0)} µs, Redis ${g.endToEndCpuMicrosPerCase.redis.toFixed(0)} µs per case; AOF rewrites during the run: ${g.aofRewritesDuring}; machine speed probe ${Math.round(g.machineSpeed).toLocaleString('en')}/s${first ? ` (${(g.machineSpeed / first.machineSpeed).toFixed(2)}× the first step's)` : ''}`,
      },
      { name: `Redis memory per waiting case (${g.waiting.toLocaleString('en')} waiting)`, value: g.redisBytesPerWaitingCase / 1024, unit: 'KiB' },
    );
  if (i) say(`intake: ${Math.round(i.gateway.perSecond)}/s (p50 ${i.gateway.p50} ms, p99 ${i.gateway.p99} ms) vs bare Queue.add ${Math.round(i.bare.perSecond)}/s (${i.ratio.toFixed(2)}×); HTTP floor ${Math.round(i.httpFloor.perSecond)}/s (${i.ofHttpFloor.toFixed(2)}×); CPU per case ${i.cpu.apiMicrosPerCase.toFixed(0)} µs vs ${i.cpu.bareMicrosPerJob.toFixed(0)} µs per bare job, Redis ${i.cpu.redisMicrosPerCase.toFixed(0)} vs ${i.cpu.redisMicrosPerBareJob.toFixed(0)} µs`);
  if (f.replicated) say(`intake with waitReplicas 1: ${Math.round(f.replicated.waiting.perSecond)}/s (p99 ${f.replicated.waiting.p99} ms) vs ${Math.round(f.replicated.notWaiting.perSecond)}/s (p99 ${f.replicated.notWaiting.p99} ms) without (${f.replicated.ratio.toFixed(2)}×)`);
  if (f.endToEnd) say(`end to end: ${Math.round(f.endToEnd.gateway.perSecond)} cases/s vs no-op worker ${Math.round(f.endToEnd.noop.perSecond)} jobs/s (${f.endToEnd.ratio.toFixed(2)}×)`);
}

recordBench(figures, details);
say(`\nreport: ${REPORT_MD}`);
