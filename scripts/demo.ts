/**
 * `npm run demo`: the gateway on the embedded default, against the local inv simulator, with a
 * little platform receiver — then a few sample cases followed to their final status.
 *
 * Starts what it needs (redis-server unless REDIS_URL is set, the simulator, the gateway) from
 * config/demo.yaml, prints each case's progress, then keeps running and prints URLs to try.
 * DEMO_EXIT_WHEN_DONE=1 stops it once every case is final (used by the test of the demo).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { loadConfig, ConfigError } from '../gateway/config.js';
import { createLogger } from '../gateway/log.js';
import { startGateway } from '../gateway/runtime.js';
import { InvSimulator } from '../tests/simulators/inv/server.js';
import { invCase } from '../tests/fixtures/cases.js';

const root = fileURLToPath(new URL('..', import.meta.url));
process.chdir(root);

// Demo-only secrets, new every run, shared by the gateway and the simulator. Never use in production.
const demoSecret = () => randomBytes(24).toString('base64url');
process.env.GATEWAY_CONFIG ??= 'config/demo.yaml';
process.env.GATEWAY_ADMIN_TOKEN ??= `demo-admin-${demoSecret()}`;
process.env.GATEWAY_PLATFORM_EVENT_SECRET ??= demoSecret();
process.env.GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET ??= demoSecret();
process.env.GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET ??= demoSecret();

const say = (s: string) => process.stdout.write(`${s}\n`);

async function main() {
  let cfg;
  try {
    cfg = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const adminToken = process.env.GATEWAY_ADMIN_TOKEN!;

  // The platform's side: prints every event the gateway sends it.
  const platformUrl = new URL(cfg.platform.defaultCallbackUrl);
  const platform = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const e = JSON.parse(Buffer.concat(chunks).toString());
        say(`  platform ← event #${e.seq} ${e.caseNo} ${e.department} ${e.status}${e.opinion ? ` (${e.opinion})` : ''}`);
      } catch {
        /* not ours */
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => platform.listen(Number(platformUrl.port), platformUrl.hostname, r));

  const invUrl = new URL(cfg.departments.inv.baseUrl);
  const sim = new InvSimulator({
    clientId: cfg.departments.inv.clientId,
    clientSecret: cfg.departments.inv.clientSecret!,
    webhookSecret: cfg.departments.inv.webhookSecret!,
    reviewDelayMs: 1500,
    decisionDelayMs: 2500,
    unknownProjects: new Set(['2026-640100-44-03-999999']),
    // A project in an industry outside policy is refused; the rest approved.
    decide: (app) => (String(app.body.project_name ?? '').includes('高耗能') ? 'rejected' : 'approved'),
  });
  await sim.listen(Number(invUrl.port));

  const log = createLogger(cfg.log.level);
  const gw = await startGateway(cfg, log);
  sim.setWebhookUrl(`${gw.url}/callbacks/inv`);
  say(`gateway  ${gw.url}   (redis ${gw.redisUrl}${process.env.REDIS_URL ? '' : ', embedded, data in var/redis/'})`);
  say(`inv sim  ${sim.url}`);
  say(`platform ${cfg.platform.defaultCallbackUrl}`);

  const api = async (method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(gw.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  const made = await api('POST', '/admin/v1/tokens', adminToken, { name: 'demo-platform', role: 'platform' });
  if (made.status !== 201) throw new Error(`could not make a platform token: ${JSON.stringify(made.body)}`);
  const platformToken = made.body.token as string;

  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const approved = invCase(`DEMO-${stamp}-1`);
  const filing = invCase(`DEMO-${stamp}-2`, { itemCode: '640100-INV-0301', itemName: '企业投资项目备案' });
  const rejected = invCase(`DEMO-${stamp}-3`);
  rejected.project = { ...rejected.project!, name: '某某高耗能项目' };
  const unknownProject = invCase(`DEMO-${stamp}-4`);
  unknownProject.project = { ...unknownProject.project!, code: '2026-640100-44-03-999999' };
  const badDigit = invCase(`DEMO-${stamp}-5`);
  badDigit.organisation = { ...badDigit.organisation!, uscc: '91350100M000100Y44' };

  say('\nsubmitting sample cases:');
  const followed: string[] = [];
  for (const c of [approved, filing, rejected, unknownProject, badDigit]) {
    const r = await api('POST', '/v1/cases', platformToken, c);
    if (r.status === 202) {
      followed.push(c.caseNo);
      say(`  ${c.caseNo} ${c.itemCode} → ${r.status} ${r.body.status}`);
    } else say(`  ${c.caseNo} ${c.itemCode} → ${r.status} ${r.body.error.code}: ${r.body.error.details.map((d: { path: string; message: string }) => `${d.path} ${d.message}`).join('; ')}`);
  }
  const again = await api('POST', '/v1/cases', platformToken, approved);
  say(`  ${approved.caseNo} sent again → ${again.status} (identical repeat: nothing sent twice)`);

  say('\nfollowing them to their final status:');
  const last = new Map<string, string>();
  const deadline = Date.now() + 120_000;
  for (;;) {
    let open = 0;
    for (const caseNo of followed) {
      const v = (await api('GET', `/v1/cases/${caseNo}`, platformToken)).body;
      const r = v.routes[0];
      const line = `${r.status}${r.receiptNo ? ` ${r.receiptNo}` : ''}${r.lastError ? ` — ${r.lastError.code}: ${r.lastError.message}` : ''}`;
      if (last.get(caseNo) !== line) say(`  ${caseNo} inv ${line}`);
      last.set(caseNo, line);
      if (v.status !== 'DONE') open++;
    }
    if (!open) break;
    if (Date.now() > deadline) {
      say('  (some cases are still open after two minutes)');
      break;
    }
    await new Promise((r) => setTimeout(r, 300));
  }

  say(`
every case is final. The gateway keeps running; try:
  curl -s -H 'authorization: Bearer ${platformToken}' ${gw.url}/v1/cases | head -c 600
  curl -s -H 'authorization: Bearer ${platformToken}' ${gw.url}/v1/cases/${approved.caseNo}
  curl -s ${gw.url}/health/ready
  admin token (this run only): ${adminToken}
Ctrl-C stops the gateway, the simulator and the embedded redis-server.`);

  const stop = async () => {
    await gw.close(5000);
    await sim.close();
    platform.closeAllConnections();
    await new Promise<void>((r) => platform.close(() => r()));
    process.exit(0);
  };
  if (process.env.DEMO_EXIT_WHEN_DONE === '1') return stop();
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((e) => {
  process.stderr.write(`demo failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
