/** A whole gateway in this process against real Redis and a real simulator, logs captured. */
import { Writable } from 'node:stream';
import { loadConfig, type GatewayConfig } from '../../gateway/config.js';
import { createLogger } from '../../gateway/log.js';
import { startGateway, type Gateway } from '../../gateway/runtime.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
export const EVENT_SECRET = 'test-event-secret';

export class LogCapture extends Writable {
  lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.lines.push(...chunk.toString().split('\n').filter(Boolean));
    cb();
  }
  get text() {
    return this.lines.join('\n');
  }
  parsed(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface TestGateway extends Gateway {
  url: string;
  logs: LogCapture;
  cfg: GatewayConfig;
  /** fetch against the API with a token. */
  call(method: string, path: string, opts?: { token?: string; body?: unknown; raw?: string | Buffer; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
  platformToken: string;
}

/** `redisUrl` null: the Redis comes from the overrides or env (Sentinel, Cluster). */
export async function startTestGateway(opts: { redisUrl: string | null; overrides?: Record<string, unknown>; ns?: string; env?: Record<string, string> }): Promise<TestGateway> {
  const env = {
    ...opts.env,
    GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    GATEWAY_PLATFORM_EVENT_SECRET: EVENT_SECRET,
    GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'sim-client-secret',
    GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'sim-webhook-secret',
    GATEWAY_DEPARTMENTS_TAX_APP_SECRET: 'sim-tax-secret',
    GATEWAY_DEPARTMENTS_SI_PASSWORD: 'sim-si-password',
    ...(opts.redisUrl !== null ? { REDIS_URL: opts.redisUrl } : {}),
  };
  const cfg = loadConfig({
    env,
    overrides: {
      server: { port: 0 },
      redis: { namespace: opts.ns ?? 'gw' },
      log: { level: 'info' },
      reconciler: { intervalMs: 500, enqueueGraceMs: 1000 },
      mappings: { reloadIntervalMs: 200 },
      ...opts.overrides,
    },
  });
  const logs = new LogCapture();
  const gw = await startGateway(cfg, createLogger(cfg.log.level, logs), env);
  const url = gw.url ?? '';
  if (!gw.url) return Object.assign(gw, { url, logs, cfg, platformToken: '', call: () => Promise.reject(new Error('a worker-only gateway has no API')) });
  // Over TLS the caller brings its own client (and trust); fetch here trusts only public CAs.
  if (gw.url.startsWith('https:')) return Object.assign(gw, { url, logs, cfg, platformToken: '', call: () => Promise.reject(new Error('use an https client with the test CA')) });
  const call: TestGateway['call'] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    let body: string | Buffer | undefined;
    if (o.raw !== undefined) body = o.raw;
    else if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(url + path, { method, headers, ...(body !== undefined ? { body: body as unknown as BodyInit } : {}) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  const made = await call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'platform-test', role: 'platform' } });
  if (made.status !== 201) throw new Error(`could not make a platform token: ${JSON.stringify(made.body)}`);
  return Object.assign(gw, { url, logs, cfg, call, platformToken: made.body.token as string });
}
