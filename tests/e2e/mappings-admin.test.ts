/**
 * Department admins own their mappings: read, change (JSON or YAML), preview, roll back, retire;
 * roles enforced; every change audited; changes reach other processes without restart; a case
 * keeps the version it was accepted with.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { ADMIN_TOKEN, EVENT_SECRET, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/platform.js';
import { spawnGateway, type GatewayProcess } from '../helpers/process.js';
import { RecordingInv } from '../helpers/recording-department.js';
import { invCase } from '../fixtures/cases.js';
import { freePort } from '../../gateway/embedded-redis.js';
import { signatureHeader } from '../../model/signature.js';
import { routeKey } from '../../gateway/intake.js';

const ITEM = '640100-INV-0201';
const seed = parseYaml(readFileSync(new URL(`../../mappings/seeds/${ITEM}.yaml`, import.meta.url), 'utf8'));

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let dept: RecordingInv;
let api: TestGateway; // API only: cases wait in the queue until a worker runs
let tokens: Record<string, string> = {};
const children: GatewayProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  dept = new RecordingInv();
  await dept.listen();
  api = await startTestGateway({ redisUrl: redis.url, overrides: { role: 'api', departments: { inv: { enabled: true, baseUrl: dept.url } } } });
  for (const role of ['ops', 'dept-admin:inv', 'dept-admin:tax']) {
    const r = await api.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: `t-${role}`, role } });
    tokens[role] = r.body.token;
  }
  tokens.platform = api.platformToken;
  tokens.admin = ADMIN_TOKEN;
});

afterAll(async () => {
  for (const c of children) c.child.kill('SIGKILL');
  await api?.close();
  await dept?.close();
  await redis?.cleanup();
});

const as = (role: string) => tokens[role]!;
const putYaml = (role: string, doc: unknown, item = ITEM) => api.call('PUT', `/admin/v1/mappings/${item}`, { token: as(role), raw: toYaml(doc), headers: { 'content-type': 'application/yaml' } });
const putJson = (role: string, doc: unknown, item = ITEM) => api.call('PUT', `/admin/v1/mappings/${item}`, { token: as(role), body: doc });

describe('reading', () => {
  it('lists items with versions and routes; ops sees all, a dept-admin its own only', async () => {
    const all = await api.call('GET', '/admin/v1/mappings', { token: as('ops') });
    expect(all.status).toBe(200);
    expect(all.body.items.find((i: { itemCode: string }) => i.itemCode === ITEM)).toMatchObject({ currentVersion: 1, retired: false, routes: [{ department: 'inv', businessType: 'INV-HZ-001' }] });
    const inv = await api.call('GET', '/admin/v1/mappings', { token: as('dept-admin:inv') });
    expect(inv.body.items.every((i: { routes: { department: string }[] }) => i.routes.every((r) => r.department === 'inv'))).toBe(true);
    expect(inv.body.items.length).toBeGreaterThan(0);
    const tax = await api.call('GET', '/admin/v1/mappings', { token: as('dept-admin:tax') });
    expect(tax.body.items.some((i: { itemCode: string }) => i.itemCode === ITEM)).toBe(false);
  });

  it('reads the current document, refuses other departments and the platform', async () => {
    const r = await api.call('GET', `/admin/v1/mappings/${ITEM}`, { token: as('dept-admin:inv') });
    expect(r.body).toMatchObject({ itemCode: ITEM, version: 1, document: seed });
    expect((await api.call('GET', `/admin/v1/mappings/${ITEM}`, { token: as('dept-admin:tax') })).status).toBe(403);
    expect((await api.call('GET', `/admin/v1/mappings/${ITEM}`, { token: as('platform') })).status).toBe(403);
    expect((await api.call('GET', `/admin/v1/mappings/${ITEM}`)).status).toBe(401);
    expect((await api.call('GET', '/admin/v1/mappings/NO-SUCH-ITEM', { token: as('ops') })).body.error.code).toBe('MAPPING_NOT_FOUND');
  });
});

describe('preview', () => {
  it('shows the exact department request, byte for byte what the connector then sends', async () => {
    const sample = invCase('PREVIEW-1');
    const p = await api.call('POST', `/admin/v1/mappings/${ITEM}/preview`, { token: as('dept-admin:tax'), body: sample });
    expect(p.status, JSON.stringify(p.body)).toBe(200);
    const route = p.body.routes[0];
    expect(route.request).toMatchObject({ method: 'POST', url: `${dept.url}/api/v1/projects/2019-640100-47-01-012345/applications`, encoding: 'utf-8' });
    expect(route.request.headers.Authorization).toBe('Bearer <access token>');
    expect(dept.requests).toHaveLength(0); // nothing sent

    // Now the same case for real, delivered by a worker.
    const worker = await startTestGateway({ redisUrl: redis.url, overrides: { role: 'worker', departments: { inv: { enabled: true, baseUrl: dept.url } } } });
    try {
      expect((await api.call('POST', '/v1/cases', { token: as('platform'), body: sample })).status).toBe(202);
      const sent = await waitFor(() => dept.submissions().find((r) => r.headers['idempotency-key'] === route.key), 10_000, 'submission');
      expect(sent.body.toString('utf8')).toBe(route.request.body);
      expect(`${dept.url}${sent.url}`).toBe(route.request.url);
      expect(sent.headers['idempotency-key']).toBe(route.request.headers['Idempotency-Key']);
      expect(sent.headers['content-type']).toBe(route.request.headers['Content-Type']);
    } finally {
      await worker.close();
    }
  });

  it('reports what a sample lacks, with paths, as intake would', async () => {
    const bad = invCase('PREVIEW-2');
    delete bad.project;
    const r = await api.call('POST', `/admin/v1/mappings/${ITEM}/preview`, { token: as('ops'), body: bad });
    expect(r.status).toBe(422);
    expect(r.body.error.details.map((d: { path: string }) => d.path)).toContain('project.code');
  });
});

describe('changing', () => {
  it('refuses a department admin on another department\'s mapping, and a mapping that would route elsewhere', async () => {
    expect((await putJson('dept-admin:tax', seed)).status).toBe(403);
    const toTax = { ...seed, routes: [...seed.routes, { department: 'tax', businessType: 'SWDJ01', request: { nsrsbh: { path: 'organisation.uscc' } } }] };
    expect((await putJson('dept-admin:inv', toTax)).status).toBe(403);
    expect((await putJson('platform', seed)).status).toBe(403);
    expect((await putJson('ops', seed)).status).toBe(403);
  });

  it('refuses an invalid mapping with the path of every fault', async () => {
    const broken = structuredClone(seed);
    broken.routes[0].request.project_name.maxLenght = 10;
    broken.routes[0].request.total_investment_wan.amount = { shift: 4 };
    broken.routes[0].request.extra.fields.energy_assessment.table = 'no.such.table';
    const r = await putJson('dept-admin:inv', broken);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('MAPPING_INVALID');
    expect(r.body.error.details.map((d: { path: string }) => d.path)).toEqual(
      expect.arrayContaining(['routes[0].request.project_name.maxLenght', 'routes[0].request.total_investment_wan.amount.places']),
    );
    const other = await putJson('dept-admin:inv', { ...seed, itemCode: '640100-INV-0301' });
    expect(other.body.error.details).toEqual([expect.objectContaining({ path: 'itemCode', code: 'MISMATCH' })]);
    const yamlBroken = await api.call('PUT', `/admin/v1/mappings/${ITEM}`, { token: as('dept-admin:inv'), raw: 'routes: [\n  - {', headers: { 'content-type': 'application/yaml' } });
    expect(yamlBroken.status).toBe(400);
  });

  it('a change in YAML is a new version, audited with who, when, before and after', async () => {
    const v2 = structuredClone(seed);
    v2.routes[0].request.extra.fields.mapping_note = { const: 'v2' };
    const r = await putYaml('dept-admin:inv', v2);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ itemCode: ITEM, version: 2, previousVersion: 1 });
    const versions = await api.call('GET', `/admin/v1/mappings/${ITEM}/versions`, { token: as('ops') });
    expect(versions.body.items.map((v: { version: number; action: string; current: boolean }) => [v.version, v.action, v.current])).toEqual([
      [1, 'seed', false],
      [2, 'put', true],
    ]);
    expect((await api.call('GET', `/admin/v1/mappings/${ITEM}/versions/1`, { token: as('ops') })).body.document).toEqual(seed);
    const entries = (await api.redis.xrange('{gw}:audit', '-', '+')) as [string, string[]][];
    const fields = entries.map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i], f[2 * i + 1]])));
    const put = fields.find((f) => f.action === 'mapping.put' && f.target === ITEM);
    expect(put).toBeDefined();
    expect(put!.who).toContain('dept-admin:inv');
    expect(JSON.parse(put!.before!)).toEqual(seed);
    expect(JSON.parse(put!.after!)).toEqual(v2);
    expect(Date.parse(put!.at!)).not.toBeNaN();
  });
});

describe('versions in flight and across processes', () => {
  it('a case keeps the version it was accepted with; new cases get the new one', async () => {
    // Accepted on v2 (the API has no workers, so it waits in the queue).
    const old = await api.call('POST', '/v1/cases', { token: as('platform'), body: invCase('VERSION-OLD-1') });
    expect(old.body.mappingVersion).toBe(2);
    const v3 = structuredClone(seed);
    v3.routes[0].request.extra.fields.mapping_note = { const: 'v3' };
    expect((await putJson('dept-admin:inv', v3)).body.version).toBe(3);
    const fresh = await api.call('POST', '/v1/cases', { token: as('platform'), body: invCase('VERSION-NEW-1') });
    expect(fresh.body.mappingVersion).toBe(3);

    const worker = await startTestGateway({ redisUrl: redis.url, overrides: { role: 'worker', departments: { inv: { enabled: true, baseUrl: dept.url } } } });
    try {
      const sentOld = await waitFor(() => dept.submissions().find((r) => r.headers['idempotency-key'] === routeKey('VERSION-OLD-1', 'inv')), 10_000, 'old case sent');
      const sentNew = await waitFor(() => dept.submissions().find((r) => r.headers['idempotency-key'] === routeKey('VERSION-NEW-1', 'inv')), 10_000, 'new case sent');
      expect(JSON.parse(sentOld.body.toString()).extra.mapping_note).toBe('v2');
      expect(JSON.parse(sentNew.body.toString()).extra.mapping_note).toBe('v3');
      expect((await api.call('GET', '/v1/cases/VERSION-OLD-1', { token: as('platform') })).body.mappingVersion).toBe(2);
    } finally {
      await worker.close();
    }
  });

  it('a change reaches another gateway process within 5 s, without restart', async () => {
    const port = await freePort();
    const child = spawnGateway('api', {
      REDIS_URL: redis.url,
      GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
      GATEWAY_PLATFORM_EVENT_SECRET: EVENT_SECRET,
      GATEWAY_SERVER_PORT: String(port),
      GATEWAY_DEPARTMENTS_INV_ENABLED: 'true',
      GATEWAY_DEPARTMENTS_INV_BASE_URL: dept.url,
      GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'x',
      GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'y',
    });
    children.push(child);
    const other = `http://127.0.0.1:${port}`;
    const version = async () => {
      const r = await fetch(`${other}/admin/v1/mappings/${ITEM}/preview`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(invCase('HOT-1')) }).catch(() => null);
      return r && r.ok ? ((await r.json()) as { version: number; routes: { payload: { extra: { mapping_note?: string } } }[] }) : null;
    };
    const before = await waitFor(version, 20_000, 'second process up');
    expect(before!.version).toBe(3);
    const v4 = structuredClone(seed);
    v4.routes[0].request.extra.fields.mapping_note = { const: 'v4' };
    const changedAt = Date.now();
    expect((await putJson('admin', v4)).body.version).toBe(4);
    const seen = await waitFor(async () => {
      const v = await version();
      return v?.version === 4 ? v : undefined;
    }, 5_000, 'the second process to use version 4');
    expect(seen.routes[0]!.payload.extra.mapping_note).toBe('v4');
    expect(Date.now() - changedAt).toBeLessThan(5_000);
  });
});

describe('rollback and retire', () => {
  it('rolls back to an old version as a new version', async () => {
    const r = await api.call('POST', `/admin/v1/mappings/${ITEM}/rollback`, { token: as('dept-admin:inv'), body: { version: 1 } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ version: 5, restoredFrom: 1 });
    expect((await api.call('GET', `/admin/v1/mappings/${ITEM}`, { token: as('ops') })).body.document).toEqual(seed);
    expect((await api.call('POST', `/admin/v1/mappings/${ITEM}/rollback`, { token: as('dept-admin:inv'), body: { version: 99 } })).body.error.code).toBe('VERSION_NOT_FOUND');
    expect((await api.call('POST', `/admin/v1/mappings/${ITEM}/rollback`, { token: as('dept-admin:tax'), body: { version: 2 } })).status).toBe(403);
  });

  it('retiring refuses new cases with MAPPING_NOT_FOUND; a new version brings the item back', async () => {
    expect((await api.call('DELETE', `/admin/v1/mappings/${ITEM}`, { token: as('dept-admin:tax') })).status).toBe(403);
    expect((await api.call('DELETE', `/admin/v1/mappings/${ITEM}`, { token: as('dept-admin:inv') })).status).toBe(204);
    const refused = await api.call('POST', '/v1/cases', { token: as('platform'), body: invCase('RETIRED-1') });
    expect(refused.status).toBe(404);
    expect(refused.body.error.code).toBe('MAPPING_NOT_FOUND');
    expect((await api.call('GET', `/admin/v1/mappings/${ITEM}`, { token: as('ops') })).body).toMatchObject({ retired: true, currentVersion: 0 });
    expect((await putJson('dept-admin:inv', seed)).body.version).toBe(6);
    expect((await api.call('POST', '/v1/cases', { token: as('platform'), body: invCase('RETIRED-2') })).status).toBe(202);
  });
});

describe('status tables', () => {
  it('a route\'s own table translates the department\'s status', async () => {
    // For this item the department's rejection is a return for supplement (退回补正).
    const doc = { ...structuredClone(seed), routes: [{ ...structuredClone(seed.routes[0]), statuses: { rejected: 'RETURNED' } }] };
    expect((await putJson('admin', doc)).status).toBe(200);
    const worker = await startTestGateway({ redisUrl: redis.url, overrides: { role: 'worker', departments: { inv: { enabled: true, baseUrl: dept.url } } } });
    try {
      expect((await api.call('POST', '/v1/cases', { token: as('platform'), body: invCase('TABLE-1') })).status).toBe(202);
      const route = await waitFor(async () => {
        const d = await api.ledger.get('TABLE-1');
        return d?.routes[0]?.receiptNo ? d.routes[0] : undefined;
      }, 10_000, 'submitted');
      const raw = JSON.stringify({ event: 'application.status_changed', application_id: route.receiptNo, request_id: route.key, status: 'rejected', occurred_at: new Date().toISOString(), opinion: '请补充材料' });
      const r = await api.call('POST', '/callbacks/inv', { raw, headers: { 'content-type': 'application/json', 'x-inv-signature': signatureHeader(raw, 'sim-webhook-secret') } });
      expect(r.status).toBe(200);
      expect((await api.ledger.get('TABLE-1'))!.routes[0]).toMatchObject({ status: 'RETURNED', departmentStatus: 'rejected', opinion: '请补充材料' });
    } finally {
      await worker.close();
    }
  });
});

describe('hostile mapping documents', () => {
  it('a stream of malformed documents is refused with paths, never a 5xx, and the gateway stays healthy', async () => {
    const rnd = mulberry32(20261124);
    const junkValues: unknown[] = [null, 1, -1, 1e308, '', 'x'.repeat(300), [], {}, [null], { path: '' }, { path: '..' }, { const: {} }, { table: 5 }, { when: 'yes' }, { list: { path: 'form' } }, { fields: {} }, { amount: { shift: 99, places: -1 } }, true];
    for (let i = 0; i < 200; i++) {
      const doc = structuredClone(seed) as any;
      // Damage 1–3 places at random depths.
      for (let k = 0; k < 1 + Math.floor(rnd() * 3); k++) {
        const r0 = doc?.routes?.[0];
        const candidates = [doc, r0, r0?.request, r0?.request?.construction_unit, r0?.request?.construction_unit?.fields, r0?.request?.extra?.fields?.received_at];
        const target = pick(rnd, candidates.filter((x) => x !== null && typeof x === 'object'));
        const key = pick(rnd, [...Object.keys(target), 'unknownKey', 'when', 'list', '__proto__', 'constructor']);
        target[key] = pick(rnd, junkValues);
      }
      const r = await putJson('admin', doc);
      expect(r.status, JSON.stringify(doc)).toBeLessThan(500);
      if (r.status === 400) {
        expect(r.body.error.details.length).toBeGreaterThan(0);
        for (const d of r.body.error.details) expect(typeof d.path).toBe('string');
      }
    }
    for (const raw of ['', '{', '[]', 'null', '"string"', '{"itemCode": 5}', '{"routes": {}}']) {
      const r = await api.call('PUT', `/admin/v1/mappings/${ITEM}`, { token: ADMIN_TOKEN, raw, headers: { 'content-type': 'application/json' } });
      expect([400, 413, 415]).toContain(r.status);
    }
    expect((await api.call('GET', '/health/ready')).status).toBe(200);
  });
});

function mulberry32(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function pick<T>(rnd: () => number, xs: T[]): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}
