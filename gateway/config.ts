/**
 * Configuration: one YAML or JSON file (path in GATEWAY_CONFIG), every setting overridable by an
 * environment variable named after its path (departments.inv.baseUrl → GATEWAY_DEPARTMENTS_INV_BASE_URL).
 * Secrets are never written in the file: only by environment variable, or by reference
 * (`{ "env": "NAME" }` or `{ "file": "/run/secrets/name" }`). Invalid configuration is refused at
 * start-up with every fault and its path.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { DEPARTMENTS, type DepartmentId } from '../model/case.js';
import type { ErrorDetail } from '../model/errors.js';
import { ajvFaults } from '../mappings/language.js';

type JsonSchema = Record<string, unknown>;

const secret = (description: string): JsonSchema => ({ type: 'string', minLength: 1, 'x-secret': true, description });
const retryPolicy = (attempts: number, baseDelayMs: number, maxDelayMs: number): JsonSchema => ({
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    attempts: { type: 'integer', minimum: 1, maximum: 10000, default: attempts },
    baseDelayMs: { type: 'integer', minimum: 1, default: baseDelayMs },
    maxDelayMs: { type: 'integer', minimum: 1, default: maxDelayMs },
  },
});

function departmentSchema(dept: DepartmentId): JsonSchema {
  const common: Record<string, JsonSchema> = {
    enabled: { type: 'boolean', default: false },
    baseUrl: { type: 'string', pattern: '^https?://', default: 'http://127.0.0.1:7100' },
    timeoutMs: { type: 'integer', minimum: 100, default: 15000 },
    concurrency: { type: 'integer', minimum: 1, maximum: 256, default: 8 },
    rateLimit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        max: { type: 'integer', minimum: 1, default: 20 },
        durationMs: { type: 'integer', minimum: 1, default: 1000 },
      },
    },
    retry: retryPolicy(12, 2000, 600_000),
    /** After an auth refusal, how long delivery to the department pauses before one probe. */
    authPauseMs: { type: 'integer', minimum: 1000, default: 60_000 },
    /** Callback departments: a route with no callback for this long is reconciled by GET. */
    reconcileAfterSeconds: { type: 'integer', minimum: 1, default: 1800 },
    /**
     * Polling departments (si, ps): first poll this long after acceptance, then doubling while
     * nothing changes, up to the ceiling. si and ps ask for at most one poll a minute: keep ≥ 60.
     */
    pollIntervalSeconds: { type: 'integer', minimum: 1, default: 60 },
    pollMaxIntervalSeconds: { type: 'integer', minimum: 1, default: 1800 },
    maxAnswerBytes: { type: 'integer', minimum: 1024, default: 4 * 1024 * 1024 },
    /** After this many retryable failures in a row, stop sending (spending no attempts) and probe. */
    circuit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        failureThreshold: { type: 'integer', minimum: 1, default: 5 },
        openMs: { type: 'integer', minimum: 100, default: 15_000 },
        maxOpenMs: { type: 'integer', minimum: 100, default: 600_000 },
      },
    },
  };
  const own: Record<DepartmentId, Record<string, JsonSchema>> = {
    inv: {
      clientId: { type: 'string', minLength: 1, default: 'gateway' },
      clientSecret: secret('OAuth2 client secret'),
      webhookSecret: secret('key of X-Inv-Signature on webhooks'),
      scope: { type: 'string', default: 'approval' },
      callbackToleranceSeconds: { type: 'integer', minimum: 1, default: 300 },
    },
    si: { username: { type: 'string', default: 'gateway' }, password: secret('WS-Security password') },
    tax: {
      appId: { type: 'string', minLength: 1, default: 'gateway' },
      appSecret: secret('HMAC key of request signing, both directions'),
      callbackToleranceSeconds: { type: 'integer', minimum: 1, default: 300 },
      /** Behind a proxy that rewrites the path: the path the tax system calls (and signs), e.g. /gw/callbacks/tax. */
      callbackPath: { type: 'string', pattern: '^(/[!-~]*)?$', default: '' },
    },
    ps: {
      senderCode: { type: 'string', default: 'GATEWAY' },
      caFile: { type: 'string' },
      certFile: { type: 'string' },
      keyFile: { type: 'string' },
    },
  };
  return { type: 'object', additionalProperties: false, default: {}, properties: { ...common, ...own[dept] } };
}

export const configSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    role: { enum: ['api', 'worker', 'all'], default: 'all' },
    server: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
        bodyLimitBytes: { type: 'integer', minimum: 1024, default: 1048576 },
        /** A request (headers and body) must arrive within this; a client trickling it is answered 408 and cut off. */
        requestTimeoutMs: { type: 'integer', minimum: 1000, maximum: 600_000, default: 30_000 },
        /** The public base URL departments call back on (for the demo and logs). */
        publicUrl: { type: 'string', default: '' },
        /**
         * HTTPS for the API, and optionally mutual TLS: with requireClientCert, a client must
         * present a certificate issued by caFile before its bearer token is even read.
         */
        tls: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            certFile: { type: 'string' },
            keyFile: { type: 'string' },
            caFile: { type: 'string' },
            requireClientCert: { type: 'boolean', default: false },
          },
        },
        /** Requests a second each platform client may make to /v1 (per process); over it, 429 with Retry-After. */
        clientRatePerSecond: { type: 'integer', minimum: 1, default: 200 },
      },
    },
    redis: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        url: secret('redis://… (may hold a password); REDIS_URL is read too'),
        cluster: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            /** Seed nodes of a Redis Cluster; when set, the gateway uses the Cluster and not `url`. */
            nodes: { type: 'array', items: { type: 'string', pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$' }, default: [], description: 'Redis Cluster seed nodes, host:port,…; REDIS_CLUSTER_NODES is read too' },
            username: { type: 'string', description: 'ACL user on every Cluster node' },
            password: secret('password of every Cluster node'),
            tls: { type: 'boolean', default: false, description: 'TLS to the Cluster nodes' },
          },
        },
        sentinel: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            /** Sentinels watching the primary; when set, the gateway asks them where the primary is. */
            nodes: { type: 'array', items: { type: 'string', pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$' }, default: [], description: 'Redis Sentinel nodes, host:port,…; REDIS_SENTINELS is read too' },
            masterName: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$', default: 'mymaster', description: 'the name the sentinels monitor the primary under' },
            username: { type: 'string', description: 'ACL user on the primary and replicas' },
            password: secret('password of the primary and replicas'),
            sentinelPassword: secret('password of the sentinels themselves, if they require one'),
          },
        },
        namespace: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,15}$', default: 'gw' },
        /** Replicas that must hold a change before it is acknowledged (Redis WAIT); 0: the primary's AOF is trusted. */
        waitReplicas: { type: 'integer', minimum: 0, maximum: 16, default: 0, description: 'replicas that must confirm a write before it is acknowledged (WAIT); 0 = off' },
        waitTimeoutMs: { type: 'integer', minimum: 10, maximum: 60_000, default: 1000, description: 'how long to wait for them before answering 503' },
        embeddedDir: { type: 'string', default: 'var/redis' },
        embeddedBinary: { type: 'string', default: 'redis-server' },
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: 'info' } },
    },
    platform: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        defaultCallbackUrl: { type: 'string', default: '' },
        eventSecret: secret('key of X-Gateway-Signature on events to the platform'),
        archiveToken: secret('bearer credential for the platform archive'),
        /** A material download that gives no bytes for this long is broken off (and retried). */
        archiveTimeoutMs: { type: 'integer', minimum: 100, default: 60_000 },
        eventTimeoutMs: { type: 'integer', minimum: 100, default: 10_000 },
        // 200 attempts at up to 15 minutes apart keeps trying for well over the 24 h the spec asks.
        eventRetry: retryPolicy(200, 1000, 900_000),
        eventConcurrency: { type: 'integer', minimum: 1, default: 16 },
      },
    },
    identifiers: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        usccExceptions: { type: 'array', items: { type: 'string', pattern: '^[0-9A-Z]{18}$' }, default: [] },
      },
    },
    worker: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** A job whose worker stops renewing its lock for this long is taken back (a crashed worker). */
        lockDurationMs: { type: 'integer', minimum: 1000, default: 30_000 },
        stalledIntervalMs: { type: 'integer', minimum: 500, default: 30_000 },
        /** Handlers are idempotent, so a job may be taken back from crashed workers several times. */
        maxStalledCount: { type: 'integer', minimum: 1, default: 10 },
        shutdownDeadlineMs: { type: 'integer', minimum: 100, default: 20_000 },
        /** A worker with jobs waiting, free slots and no sign of life for this long is recreated (queue/watchdog.ts). */
        stuckAfterMs: { type: 'integer', minimum: 1000, default: 60_000 },
      },
    },
    reconciler: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        intervalMs: { type: 'integer', minimum: 100, default: 5000 },
        /** The outbox lease: a route claimed by a dispatcher that has not queued it within this time is taken by another. */
        enqueueGraceMs: { type: 'integer', minimum: 100, default: 15_000 },
      },
    },
    certs: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Seed trust anchors (manifest.json + PEM files), installed when the store holds none. */
        anchorsDir: { type: 'string', default: 'certs/anchors' },
        /** How often every process looks for trust-store changes. */
        reloadIntervalMs: { type: 'integer', minimum: 100, default: 1000 },
      },
    },
    mappings: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        seedsDir: { type: 'string', default: 'mappings/seeds' },
        reloadIntervalMs: { type: 'integer', minimum: 100, default: 1000 },
      },
    },
    departments: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: Object.fromEntries(DEPARTMENTS.map((d) => [d, departmentSchema(d)])),
    },
  },
};

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface DepartmentConfigBase {
  enabled: boolean;
  baseUrl: string;
  timeoutMs: number;
  concurrency: number;
  rateLimit: { max: number; durationMs: number };
  retry: RetryPolicy;
  authPauseMs: number;
  reconcileAfterSeconds: number;
  pollIntervalSeconds: number;
  pollMaxIntervalSeconds: number;
  circuit: { failureThreshold: number; openMs: number; maxOpenMs: number };
  maxAnswerBytes: number;
}

export interface InvConfig extends DepartmentConfigBase {
  clientId: string;
  clientSecret?: string;
  webhookSecret?: string;
  scope: string;
  callbackToleranceSeconds: number;
}

export interface GatewayConfig {
  certs: { anchorsDir: string; reloadIntervalMs: number };
  role: 'api' | 'worker' | 'all';
  server: { host: string; port: number; bodyLimitBytes: number; requestTimeoutMs: number; publicUrl: string; clientRatePerSecond: number; tls: { certFile?: string; keyFile?: string; caFile?: string; requireClientCert: boolean } };
  redis: {
    url?: string;
    cluster: { nodes: string[]; username?: string; password?: string; tls: boolean };
    sentinel: { nodes: string[]; masterName: string; username?: string; password?: string; sentinelPassword?: string }; namespace: string; waitReplicas: number; waitTimeoutMs: number; embeddedDir: string; embeddedBinary: string };
  log: { level: string };
  platform: {
    defaultCallbackUrl: string;
    eventSecret?: string;
    archiveToken?: string;
    archiveTimeoutMs: number;
    eventTimeoutMs: number;
    eventRetry: RetryPolicy;
    eventConcurrency: number;
  };
  identifiers: { usccExceptions: string[] };
  worker: { lockDurationMs: number; stalledIntervalMs: number; maxStalledCount: number; shutdownDeadlineMs: number; stuckAfterMs: number };
  reconciler: { intervalMs: number; enqueueGraceMs: number };
  mappings: { seedsDir: string; reloadIntervalMs: number };
  departments: {
    inv: InvConfig;
    si: DepartmentConfigBase & { username: string; password?: string };
    tax: DepartmentConfigBase & { appId: string; appSecret?: string; callbackToleranceSeconds: number; callbackPath: string };
    ps: DepartmentConfigBase & { senderCode: string; caFile?: string; certFile?: string; keyFile?: string };
  };
}

export class ConfigError extends Error {
  constructor(readonly faults: ErrorDetail[]) {
    super(`invalid configuration:\n${faults.map((f) => `  ${f.path || '(root)'}: ${f.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

interface Leaf {
  path: string[];
  schema: JsonSchema;
}

function leaves(schema: JsonSchema, path: string[] = []): Leaf[] {
  if (schema.type === 'object' && schema.properties) {
    return Object.entries(schema.properties as Record<string, JsonSchema>).flatMap(([k, s]) => leaves(s, [...path, k]));
  }
  return [{ path, schema }];
}

/** departments.inv.baseUrl → GATEWAY_DEPARTMENTS_INV_BASE_URL */
export function envName(path: string[]): string {
  return 'GATEWAY_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Every setting with its environment variable, for the README and `--help`. */
export function settingsTable(): { path: string; env: string; secret: boolean; default: unknown }[] {
  return leaves(configSchema).map((l) => ({
    path: l.path.join('.'),
    env: envName(l.path),
    secret: l.schema['x-secret'] === true,
    default: l.schema.default,
  }));
}

function coerceEnv(raw: string, schema: JsonSchema): unknown {
  const t = schema.type;
  if (t === 'integer' || t === 'number') return /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
  if (t === 'boolean') return raw === 'true' ? true : raw === 'false' ? false : raw;
  if (t === 'array') {
    const s = raw.trim();
    if (s.startsWith('[')) {
      try {
        return JSON.parse(s);
      } catch {
        return raw;
      }
    }
    return s ? s.split(',').map((x) => x.trim()) : [];
  }
  return raw;
}

function getIn(obj: Record<string, unknown>, path: string[]): unknown {
  let cur: unknown = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function setIn(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const p of path.slice(0, -1)) {
    if (cur[p] === null || typeof cur[p] !== 'object' || Array.isArray(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

export interface LoadOptions {
  /** Path of the config file; default: GATEWAY_CONFIG, or none (defaults and environment only). */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Overrides applied last, as if they were in the file (tests, the demo). */
  overrides?: Record<string, unknown>;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export function loadConfig(opts: LoadOptions = {}): GatewayConfig {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.GATEWAY_CONFIG;
  const faults: ErrorDetail[] = [];
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError([{ path: '', code: 'UNREADABLE', message: `cannot read ${file}: ${(e as Error).message}` }]);
    }
    try {
      const parsed: unknown = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
      if (parsed !== null && parsed !== undefined) {
        if (typeof parsed !== 'object' || Array.isArray(parsed))
          throw new ConfigError([{ path: '', code: 'NOT_AN_OBJECT', message: `${file} must hold an object` }]);
        raw = parsed as Record<string, unknown>;
      }
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError([{ path: '', code: 'UNPARSABLE', message: `${file}: ${(e as Error).message}` }]);
    }
  }
  if (opts.overrides) raw = deepMerge(raw, opts.overrides);

  for (const leaf of leaves(configSchema)) {
    const p = leaf.path.join('.');
    const inFile = getIn(raw, leaf.path);
    if (leaf.schema['x-secret'] === true && inFile !== undefined) {
      // A secret in the file is accepted only as a reference.
      const ref = inFile as { env?: unknown; file?: unknown };
      if (ref && typeof ref === 'object' && typeof ref.env === 'string' && Object.keys(ref).length === 1) {
        const v = env[ref.env];
        if (v === undefined) faults.push({ path: p, code: 'SECRET_MISSING', message: `environment variable ${ref.env} is not set` });
        setIn(raw, leaf.path, v);
      } else if (ref && typeof ref === 'object' && typeof ref.file === 'string' && Object.keys(ref).length === 1) {
        try {
          setIn(raw, leaf.path, readFileSync(ref.file, 'utf8').trim());
        } catch (e) {
          faults.push({ path: p, code: 'SECRET_MISSING', message: `cannot read ${ref.file}: ${(e as Error).message}` });
        }
      } else {
        faults.push({
          path: p,
          code: 'SECRET_IN_FILE',
          message: `a secret is never written in the file: set ${envName(leaf.path)}, or write {"env": "NAME"} or {"file": "/path"}`,
        });
      }
    }
    const fromEnv = env[envName(leaf.path)];
    if (fromEnv !== undefined) setIn(raw, leaf.path, coerceEnv(fromEnv, leaf.schema));
  }
  if (env.REDIS_URL && env.GATEWAY_REDIS_URL === undefined) setIn(raw, ['redis', 'url'], env.REDIS_URL);
  if (env.REDIS_CLUSTER_NODES && env.GATEWAY_REDIS_CLUSTER_NODES === undefined) setIn(raw, ['redis', 'cluster', 'nodes'], coerceEnv(env.REDIS_CLUSTER_NODES, { type: 'array' }));
  if (env.REDIS_SENTINELS && env.GATEWAY_REDIS_SENTINEL_NODES === undefined) setIn(raw, ['redis', 'sentinel', 'nodes'], coerceEnv(env.REDIS_SENTINELS, { type: 'array' }));

  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
  const validate = ajv.compile(configSchema);
  if (!validate(raw)) faults.push(...ajvFaults(validate.errors));
  if (faults.length) throw new ConfigError(faults);
  const cfg = raw as unknown as GatewayConfig;

  const redisKinds = [cfg.redis.url && 'redis.url', cfg.redis.cluster.nodes.length && 'redis.cluster.nodes', cfg.redis.sentinel.nodes.length && 'redis.sentinel.nodes'].filter(Boolean) as string[];
  if (cfg.redis.waitReplicas > 0 && !redisKinds.length)
    faults.push({ path: 'redis.waitReplicas', code: 'CONFLICT', message: 'the embedded redis-server has no replicas: set redis.url, redis.cluster.nodes or redis.sentinel.nodes, or leave waitReplicas at 0' });
  if (redisKinds.length > 1)
    faults.push({ path: redisKinds[1]!, code: 'CONFLICT', message: `set one of redis.url (one Redis), redis.cluster.nodes (a Redis Cluster) and redis.sentinel.nodes (a primary under Sentinel), not ${redisKinds.join(' and ')}` });

  // Settings that only matter once a department is enabled.
  const inv = cfg.departments.inv;
  if (inv.enabled) {
    if (!inv.clientSecret) faults.push({ path: 'departments.inv.clientSecret', code: 'REQUIRED', message: `set ${envName(['departments', 'inv', 'clientSecret'])}` });
    if (!inv.webhookSecret) faults.push({ path: 'departments.inv.webhookSecret', code: 'REQUIRED', message: `set ${envName(['departments', 'inv', 'webhookSecret'])}` });
  }
  const tax = cfg.departments.tax;
  if (tax.enabled && !tax.appSecret) faults.push({ path: 'departments.tax.appSecret', code: 'REQUIRED', message: `set ${envName(['departments', 'tax', 'appSecret'])}` });
  const si = cfg.departments.si;
  if (si.enabled && !si.password) faults.push({ path: 'departments.si.password', code: 'REQUIRED', message: `set ${envName(['departments', 'si', 'password'])}` });
  const tls = cfg.server.tls;
  if (tls.certFile || tls.keyFile || tls.requireClientCert) {
    for (const f of ['certFile', 'keyFile', ...(tls.requireClientCert ? ['caFile'] : [])] as const) {
      const file = tls[f as 'certFile'];
      if (!file) faults.push({ path: `server.tls.${f}`, code: 'REQUIRED', message: `set ${envName(['server', 'tls', f])}` });
      else if (!existsSync(file)) faults.push({ path: `server.tls.${f}`, code: 'UNREADABLE', message: `no file ${file}` });
    }
  }
  const ps = cfg.departments.ps;
  if (ps.enabled) {
    for (const f of ['caFile', 'certFile', 'keyFile'] as const) {
      const file = ps[f];
      if (!file) faults.push({ path: `departments.ps.${f}`, code: 'REQUIRED', message: `mutual TLS needs it: set ${envName(['departments', 'ps', f])}` });
      else if (!existsSync(file)) faults.push({ path: `departments.ps.${f}`, code: 'UNREADABLE', message: `no file ${file}` });
    }
    if (!/^https:/.test(ps.baseUrl)) faults.push({ path: 'departments.ps.baseUrl', code: 'INVALID', message: 'ps is reached over mutual TLS: an https:// URL' });
  }
  if (faults.length) throw new ConfigError(faults);
  return cfg;
}
