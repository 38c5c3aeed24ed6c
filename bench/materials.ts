/**
 * Material push throughput and memory: a 1 GiB file pushed by the gateway (built, run as its own
 * process, as in production) from a platform archive into the inv simulator's upload session,
 * side by side with a plain streamed upload of the same file to the same simulator (read the
 * archive, PUT 5 MiB parts, complete) — in the same run. Reports MB/s of both, their ratio, and
 * the gateway process's peak RSS (VmHWM).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedRedis, freePort } from '../gateway/embedded-redis.js';
import { InvSimulator } from '../tests/simulators/inv/server.js';
import { PlatformArchive } from '../tests/helpers/archive.js';
import { invCase } from '../tests/fixtures/cases.js';

export interface MaterialBench {
  sizeMiB: number;
  gatewayMBps: number;
  plainMBps: number;
  ratio: number;
  gatewayPeakRssMB: number;
  rssBoundMB: number;
}

const ADMIN = 'bench-admin-token-0123456789abcdef0123';

function peakRssMB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function plainUpload(sim: InvSimulator, url: string, size: number, sha256: string): Promise<number> {
  // A token and an application, as any client of inv would have.
  const tok = (await (await fetch(`${sim.url}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials&client_id=gateway&client_secret=sim-client-secret&scope=approval' })).json()) as { access_token: string };
  const auth = { authorization: `Bearer ${tok.access_token}` };
  const appRes = await fetch(`${sim.url}/api/v1/projects/2019-640100-47-01-012345/applications`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', 'idempotency-key': 'BENCHPLAIN' },
    body: JSON.stringify({ request_id: 'BENCHPLAIN', matter_code: 'INV-HZ-001', project_name: 'bench', construction_unit: { name: 'x', uscc: '91350100M000100Y43' }, total_investment_wan: '1.0000' }),
  });
  const app = (await appRes.json()) as { application_id: string };
  const started = Date.now();
  const open = (await (await fetch(`${sim.url}/api/v1/uploads`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ application_id: app.application_id, material_id: 'PLAIN', file_name: 'plain.pdf', size, sha256 }) })).json()) as { upload_id: string; part_size: number };
  // Read the same file from the same archive over HTTP, as the gateway does.
  const res = await fetch(url, { headers: { authorization: 'Bearer archive-test-token' } });
  if (!res.ok || !res.body) throw new Error(`archive answered ${res.status}`);
  let part: Buffer[] = [];
  let len = 0;
  let n = 0;
  const flush = async () => {
    n++;
    const body = Buffer.concat(part, len);
    part = [];
    len = 0;
    const r = await fetch(`${sim.url}/api/v1/uploads/${open.upload_id}/parts/${n}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body });
    if (!r.ok) throw new Error(`part ${n}: ${r.status}`);
  };
  for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
    let buf = Buffer.from(c);
    while (buf.length) {
      const take = Math.min(open.part_size - len, buf.length);
      part.push(buf.subarray(0, take));
      len += take;
      buf = buf.subarray(take);
      if (len === open.part_size) await flush();
    }
  }
  if (len) await flush();
  const done = await fetch(`${sim.url}/api/v1/uploads/${open.upload_id}/complete`, { method: 'POST', headers: auth });
  if (!done.ok) throw new Error(`complete: ${done.status} ${await done.text()}`);
  return Date.now() - started;
}

export async function benchMaterials(sizeMiB = Number(process.env.BENCH_MATERIAL_MIB ?? 1024)): Promise<MaterialBench> {
  const size = sizeMiB * 1024 * 1024;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-'));
  const redis = await startEmbeddedRedis({ dir: join(dir, 'redis') });
  // No rate limit here: the bench measures bytes, not the department's 20 requests a second.
  const sim = new InvSimulator({ reviewDelayMs: 3_600_000, ratePerSecond: 100_000 });
  await sim.listen();
  const archive = new PlatformArchive();
  await archive.listen();
  const port = await freePort();
  let child: ReturnType<typeof spawn> | null = null;
  try {
    const mat = await archive.material('BENCH-1', 'BIG', size);
    const plainMs = await plainUpload(sim, mat.url, size, mat.sha256);

    child = spawn(process.execPath, ['dist/gateway/main.js', '--role', 'all'], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: redis.url,
        GATEWAY_ADMIN_TOKEN: ADMIN,
        GATEWAY_PLATFORM_EVENT_SECRET: 'bench-event-secret-0123456789abcdef',
        GATEWAY_PLATFORM_ARCHIVE_TOKEN: archive.token,
        GATEWAY_SERVER_PORT: String(port),
        GATEWAY_LOG_LEVEL: 'warn',
        GATEWAY_DEPARTMENTS_INV_ENABLED: 'true',
        GATEWAY_DEPARTMENTS_INV_BASE_URL: sim.url,
        GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'sim-client-secret',
        GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'sim-webhook-secret',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      const ok = await fetch(`${base}/health/ready`).then((r) => r.ok, () => false);
      if (ok) break;
      if (i > 200) throw new Error('gateway did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    const tok = (await (await fetch(`${base}/admin/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench', role: 'platform' }) })).json()) as { token: string };
    const started = Date.now();
    const r = await fetch(`${base}/v1/cases`, { method: 'POST', headers: { authorization: `Bearer ${tok.token}`, 'content-type': 'application/json' }, body: JSON.stringify(invCase('BENCH-1', { materials: [mat] })) });
    if (r.status !== 202) throw new Error(`case refused: ${r.status} ${await r.text()}`);
    for (;;) {
      const v = (await (await fetch(`${base}/v1/cases/BENCH-1`, { headers: { authorization: `Bearer ${tok.token}` } })).json()) as { routes: { materials: { status: string; error?: unknown }[] }[] };
      const m = v.routes[0]!.materials[0]!;
      if (m.status === 'DELIVERED') break;
      if (m.status === 'FAILED') throw new Error(`push failed: ${JSON.stringify(m.error)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const gatewayMs = Date.now() - started;
    const rss = peakRssMB(child.pid!);
    const mb = size / 1e6;
    const gatewayMBps = mb / (gatewayMs / 1000);
    const plainMBps = mb / (plainMs / 1000);
    return { sizeMiB, gatewayMBps, plainMBps, ratio: gatewayMBps / plainMBps, gatewayPeakRssMB: rss, rssBoundMB: 200 };
  } finally {
    child?.kill('SIGKILL');
    await sim.close();
    await archive.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
