import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, envName, loadConfig, settingsTable } from '../../gateway/config.js';
import { makeTestPki } from '../helpers/pki.js';
import { sentinelTarget, clusterTarget, describeTarget, parseClusterNode } from '../../queue/redis-client.js';

const SECRETS = { GATEWAY_ADMIN_TOKEN: 'a'.repeat(40), GATEWAY_PLATFORM_EVENT_SECRET: 'e'.repeat(40) };

function file(name: string, text: string): string {
  const p = join(mkdtempSync(join(tmpdir(), 'gw-config-')), name);
  writeFileSync(p, text);
  return p;
}

function faultsOf(fn: () => unknown): { path: string; code: string }[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.faults.map((f) => ({ path: f.path, code: f.code }));
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('names environment variables after the setting path', () => {
    expect(envName(['departments', 'inv', 'baseUrl'])).toBe('GATEWAY_DEPARTMENTS_INV_BASE_URL');
    const table = settingsTable();
    expect(table.find((s) => s.path === 'departments.inv.clientSecret')).toMatchObject({ env: 'GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET', secret: true });
  });

  it('takes the file from GATEWAY_CONFIG, and the environment over the file', () => {
    const f = file('g.yaml', 'server:\n  port: 9100\ndepartments:\n  inv:\n    baseUrl: http://file.example\n    concurrency: 3\n');
    const cfg = loadConfig({ env: { ...SECRETS, GATEWAY_CONFIG: f, GATEWAY_DEPARTMENTS_INV_CONCURRENCY: '9' } });
    expect(cfg.server.port).toBe(9100);
    expect(cfg.departments.inv.baseUrl).toBe('http://file.example');
    expect(cfg.departments.inv.concurrency).toBe(9);
  });

  it('every setting in the table can be set by its environment variable', () => {
    // Each leaf gets a value its schema accepts; the loaded config must carry it. (A Redis of its
    // own, since redis.waitReplicas means nothing on the embedded one.)
    for (const s of settingsTable().filter((x) => typeof x.default === 'number')) {
      const cfg = loadConfig({ env: { ...SECRETS, REDIS_URL: 'redis://10.0.0.1:6379', [s.env]: String((s.default as number) + 1) } });
      const got = s.path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], cfg);
      expect(got, s.env).toBe((s.default as number) + 1);
    }
  });

  it('refuses a secret written in the file, and accepts it by reference', () => {
    const plain = file('g.yaml', 'departments:\n  inv:\n    clientSecret: hunter2\n');
    expect(faultsOf(() => loadConfig({ env: { ...SECRETS, GATEWAY_CONFIG: plain } }))).toContainEqual({ path: 'departments.inv.clientSecret', code: 'SECRET_IN_FILE' });

    const secretFile = file('secret', 'from-a-file\n');
    const byRef = file('g.yaml', `departments:\n  inv:\n    clientSecret: { file: ${secretFile} }\n    webhookSecret: { env: MY_HOOK }\n`);
    const cfg = loadConfig({ env: { ...SECRETS, GATEWAY_CONFIG: byRef, MY_HOOK: 'from-env' } });
    expect(cfg.departments.inv.clientSecret).toBe('from-a-file');
    expect(cfg.departments.inv.webhookSecret).toBe('from-env');
    expect(faultsOf(() => loadConfig({ env: { ...SECRETS, GATEWAY_CONFIG: byRef } }))).toContainEqual({ path: 'departments.inv.webhookSecret', code: 'SECRET_MISSING' });
  });

  it('reports every fault with its path at once', () => {
    const f = file('g.yaml', 'server:\n  port: "eighty"\n  bodyLimitBytes: -1\ndepartments:\n  inv:\n    enabled: true\n    concurrency: 0\n    retry:\n      attempts: many\nunknownThing: 1\n');
    const faults = faultsOf(() => loadConfig({ env: { ...SECRETS, GATEWAY_CONFIG: f } }));
    const paths = faults.map((x) => x.path);
    for (const p of ['server.port', 'server.bodyLimitBytes', 'departments.inv.concurrency', 'departments.inv.retry.attempts', 'unknownThing']) expect(paths, p).toContain(p);
  });

  it('refuses an enabled department without its secrets, keys or an https URL for mutual TLS', () => {
    const faults = faultsOf(() => loadConfig({ env: { ...SECRETS, GATEWAY_DEPARTMENTS_INV_ENABLED: 'true', GATEWAY_DEPARTMENTS_PS_ENABLED: 'true', GATEWAY_DEPARTMENTS_SI_ENABLED: 'true' } }));
    expect(faults).toEqual(
      expect.arrayContaining([
        { path: 'departments.inv.clientSecret', code: 'REQUIRED' },
        { path: 'departments.inv.webhookSecret', code: 'REQUIRED' },
        { path: 'departments.ps.caFile', code: 'REQUIRED' },
        { path: 'departments.ps.baseUrl', code: 'INVALID' },
        { path: 'departments.si.password', code: 'REQUIRED' },
      ]),
    );
  });

  it('refuses an unreadable or unparsable file clearly', () => {
    expect(faultsOf(() => loadConfig({ env: { ...SECRETS, GATEWAY_CONFIG: '/nonexistent/gateway.yaml' } }))).toEqual([{ path: '', code: 'UNREADABLE' }]);
    expect(faultsOf(() => loadConfig({ env: { ...SECRETS, GATEWAY_CONFIG: file('g.yaml', 'a: [1,\n') } }))).toEqual([{ path: '', code: 'UNPARSABLE' }]);
  });

  it('takes REDIS_URL as redis.url', () => {
    expect(loadConfig({ env: { ...SECRETS, REDIS_URL: 'redis://10.0.0.1:6380/2' } }).redis.url).toBe('redis://10.0.0.1:6380/2');
  });

  it('takes redis.waitReplicas only with a Redis of its own: the embedded server has no replicas', () => {
    expect(loadConfig({ env: { ...SECRETS, REDIS_URL: 'redis://10.0.0.1:6379', GATEWAY_REDIS_WAIT_REPLICAS: '1' } }).redis).toMatchObject({ waitReplicas: 1, waitTimeoutMs: 1000 });
    expect(loadConfig({ env: SECRETS }).redis.waitReplicas).toBe(0);
    expect(faultsOf(() => loadConfig({ env: { ...SECRETS, GATEWAY_REDIS_WAIT_REPLICAS: '1' } }))).toEqual([{ path: 'redis.waitReplicas', code: 'CONFLICT' }]);
  });

  it('takes REDIS_SENTINELS as the Sentinel nodes, with the monitored name and passwords; one kind of Redis at a time', () => {
    const r = loadConfig({ env: { ...SECRETS, REDIS_SENTINELS: '10.0.0.1:26379,10.0.0.2:26379', GATEWAY_REDIS_SENTINEL_MASTER_NAME: 'gw-main', GATEWAY_REDIS_SENTINEL_PASSWORD: 'p', GATEWAY_REDIS_SENTINEL_SENTINEL_PASSWORD: 's' } }).redis.sentinel;
    expect(r).toEqual({ nodes: ['10.0.0.1:26379', '10.0.0.2:26379'], masterName: 'gw-main', password: 'p', sentinelPassword: 's' });
    const t = sentinelTarget(r.nodes, r.masterName, r);
    expect(t).toMatchObject({ kind: 'sentinel', name: 'gw-main', sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }], redisOptions: { password: 'p', sentinelPassword: 's' } });
    expect(describeTarget(t)).toBe('sentinel gw-main@10.0.0.1:26379,10.0.0.2:26379'); // never a password
    expect(faultsOf(() => loadConfig({ env: { ...SECRETS, REDIS_SENTINELS: '10.0.0.1:26379', REDIS_URL: 'redis://10.0.0.1:6379' } }))).toEqual([{ path: 'redis.sentinel.nodes', code: 'CONFLICT' }]);
    expect(faultsOf(() => loadConfig({ env: { ...SECRETS, REDIS_SENTINELS: '10.0.0.1' } }))).toEqual([{ path: 'redis.sentinel.nodes[0]', code: 'INVALID' }]);
    expect(loadConfig({ env: { ...SECRETS, REDIS_SENTINELS: '10.0.0.1:26379', GATEWAY_REDIS_WAIT_REPLICAS: '1' } }).redis.waitReplicas).toBe(1);
  });

  it('takes REDIS_CLUSTER_NODES as the Cluster seeds; refuses bad nodes and a Cluster together with a url', () => {
    const c = loadConfig({ env: { ...SECRETS, REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b.internal:7001,[fd00::3]:7002', GATEWAY_REDIS_CLUSTER_PASSWORD: 'p' } }).redis.cluster;
    expect(c).toEqual({ nodes: ['10.0.0.1:7000', 'redis-b.internal:7001', '[fd00::3]:7002'], password: 'p', tls: false });
    expect(faultsOf(() => loadConfig({ env: { ...SECRETS, REDIS_CLUSTER_NODES: '10.0.0.1' } }))).toEqual([{ path: 'redis.cluster.nodes[0]', code: 'INVALID' }]);
    expect(faultsOf(() => loadConfig({ env: { ...SECRETS, REDIS_CLUSTER_NODES: '10.0.0.1:7000', REDIS_URL: 'redis://10.0.0.1:6379' } }))).toEqual([{ path: 'redis.cluster.nodes', code: 'CONFLICT' }]);
    expect(parseClusterNode('[fd00::3]:7002')).toEqual({ host: 'fd00::3', port: 7002 });
    expect(describeTarget(clusterTarget(['a:1', 'b:2'], { password: 'secret' }))).toBe('cluster a:1,b:2');
    expect(describeTarget({ kind: 'single', url: 'redis://:secret@h:6380/1' })).toBe('redis://h:6380');
  });

  it('the shipped example and demo configurations load', () => {
    const example = loadConfig({ env: { GATEWAY_ADMIN_TOKEN: SECRETS.GATEWAY_ADMIN_TOKEN, GATEWAY_CONFIG: 'config/gateway.example.yaml', PLATFORM_EVENT_SECRET: 'x'.repeat(32), INV_CLIENT_SECRET: 'c', INV_WEBHOOK_SECRET: 'w', SI_PASSWORD: 's', TAX_APP_SECRET: 't' } });
    expect(example.departments.inv).toMatchObject({ enabled: true, clientSecret: 'c', webhookSecret: 'w' });
    expect(example.platform.eventSecret).toBe('x'.repeat(32));
    const pki = makeTestPki();
    try {
      const demo = loadConfig({
        env: {
          ...SECRETS,
          GATEWAY_CONFIG: 'config/demo.yaml',
          GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'c',
          GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'w',
          GATEWAY_DEPARTMENTS_SI_PASSWORD: 'p',
          GATEWAY_DEPARTMENTS_TAX_APP_SECRET: 't',
          GATEWAY_DEPARTMENTS_PS_CA_FILE: pki.caFile,
          GATEWAY_DEPARTMENTS_PS_CERT_FILE: pki.clientCertFile,
          GATEWAY_DEPARTMENTS_PS_KEY_FILE: pki.clientKeyFile,
        },
      });
      for (const d of ['si', 'tax', 'ps', 'inv'] as const) expect(demo.departments[d]).toMatchObject({ enabled: true, baseUrl: expect.stringMatching(/^https?:\/\/127\.0\.0\.1:/) });
    } finally {
      pki.cleanup();
    }
  });
});
