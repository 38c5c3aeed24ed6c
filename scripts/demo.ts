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
import { writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { InvSimulator } from '../tests/simulators/inv/server.js';
import { SiSimulator } from '../tests/simulators/si/server.js';
import { TaxSimulator } from '../tests/simulators/tax/server.js';
import { PsSimulator } from '../tests/simulators/ps/server.js';
import { makeTestPki } from '../tests/helpers/pki.js';
import { invCase, sampleCaseFor } from '../tests/fixtures/cases.js';

const root = fileURLToPath(new URL('..', import.meta.url));
process.chdir(root);

// Demo-only secrets, new every run, shared by the gateway and the simulator. Never use in production.
const demoSecret = () => randomBytes(24).toString('base64url');
process.env.GATEWAY_CONFIG ??= 'config/demo.yaml';
process.env.GATEWAY_ADMIN_TOKEN ??= `demo-admin-${demoSecret()}`;
process.env.GATEWAY_PLATFORM_EVENT_SECRET ??= demoSecret();
process.env.GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET ??= demoSecret();
process.env.GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET ??= demoSecret();
process.env.GATEWAY_DEPARTMENTS_SI_PASSWORD ??= demoSecret();
process.env.GATEWAY_DEPARTMENTS_TAX_APP_SECRET ??= demoSecret();
// The ps department's CA, its server certificate and the gateway's client certificate, new every run.
process.env.GATEWAY_DEPARTMENTS_PS_CA_FILE ??= 'var/demo-pki/dept-ca.pem';
process.env.GATEWAY_DEPARTMENTS_PS_CERT_FILE ??= `${dirname(process.env.GATEWAY_DEPARTMENTS_PS_CA_FILE)}/client.pem`;
process.env.GATEWAY_DEPARTMENTS_PS_KEY_FILE ??= `${dirname(process.env.GATEWAY_DEPARTMENTS_PS_CA_FILE)}/client.key`;
const pki = makeTestPki(dirname(process.env.GATEWAY_DEPARTMENTS_PS_CA_FILE));

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
  const d = cfg.departments;
  const siSim = new SiSimulator({ username: d.si.username, password: d.si.password!, reviewDelayMs: 1500, decisionDelayMs: 2500 });
  await siSim.listen(Number(new URL(d.si.baseUrl).port));
  const taxSim = new TaxSimulator({ appId: d.tax.appId, appSecret: d.tax.appSecret!, reviewDelayMs: 1500, decisionDelayMs: 2500 });
  await taxSim.listen(Number(new URL(d.tax.baseUrl).port));
  const psSim = new PsSimulator({ key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, sender: d.ps.senderCode, reviewDelayMs: 1500, decisionDelayMs: 2500 });
  await psSim.listen(Number(new URL(d.ps.baseUrl).port));

  const log = createLogger(cfg.log.level);
  const gw = await startGateway(cfg, log);
  sim.setWebhookUrl(`${gw.url}/callbacks/inv`);
  taxSim.setWebhookUrl(`${gw.url}/callbacks/tax`);
  say(`gateway  ${gw.url}   (redis ${gw.redisTarget}${process.env.REDIS_URL || process.env.REDIS_CLUSTER_NODES ? '' : ', embedded, data in var/redis/'})`);
  say(`si sim   ${siSim.url}  (SOAP, WS-Security)`);
  say(`tax sim  ${taxSim.url}  (signed REST, webhooks)`);
  say(`ps sim   ${psSim.url}  (GBK XML, mutual TLS)`);
  say(`inv sim  ${sim.url}  (OAuth2 REST, webhooks)`);
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

  const pension = sampleCaseFor('640100-SI-0101', `DEMO-${stamp}-6`);
  const companyOpening = sampleCaseFor('640100-QYKB-0001', `DEMO-${stamp}-7`);
  const idCard = sampleCaseFor('640100-PS-0301', `DEMO-${stamp}-8`);
  const rareName = sampleCaseFor('640100-PS-0301', `DEMO-${stamp}-9`);
  rareName.applicant.name = '王𠮷';

  say('\nsubmitting sample cases:');
  const followed: string[] = [];
  for (const c of [approved, filing, rejected, unknownProject, badDigit, pension, companyOpening, idCard, rareName]) {
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
      for (const r of v.routes) {
        const line = `${r.status}${r.receiptNo ? ` ${r.receiptNo}` : ''}${r.lastError ? ` — ${r.lastError.code}: ${r.lastError.message}` : ''}`;
        const key = `${caseNo} ${r.department}`;
        if (last.get(key) !== line) say(`  ${key} ${line}`);
        last.set(key, line);
      }
      if (v.status !== 'DONE') open++;
    }
    if (!open) break;
    if (Date.now() > deadline) {
      say('  (some cases are still open after two minutes)');
      break;
    }
    await new Promise((r) => setTimeout(r, 300));
  }

  // A sample case for the preview, in a file rather than on the screen (it carries an ID number).
  const sampleFile = `${dirname(process.env.GATEWAY_DEPARTMENTS_PS_CA_FILE!)}/sample-case.json`;
  writeFileSync(sampleFile, JSON.stringify(idCard, null, 2));
  say(`
The gateway keeps running; try:
  curl -s -H 'authorization: Bearer ${platformToken}' ${gw.url}/v1/cases | head -c 600
  curl -s -H 'authorization: Bearer ${platformToken}' ${gw.url}/v1/cases/${approved.caseNo}
  curl -s ${gw.url}/health/ready
  curl -s -H 'authorization: Bearer ${adminToken}' ${gw.url}/admin/v1/mappings
  curl -s -H 'authorization: Bearer ${adminToken}' -H 'content-type: application/json' \\
       -d @${sampleFile} ${gw.url}/admin/v1/mappings/640100-PS-0301/preview
  admin token (this run only): ${adminToken}
Ctrl-C stops the gateway, the simulators and the embedded redis-server.`);

  const stop = async () => {
    await gw.close(5000);
    await Promise.all([sim.close(), siSim.close(), taxSim.close(), psSim.close()]);
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
