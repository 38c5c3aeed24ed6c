/**
 * The four department simulators, a platform receiver and Redis, with the environment a gateway
 * process needs to reach them all: the set-up of the multi-department e2e and reliability runs.
 */
import type { DepartmentId } from '../../model/case.js';
import { InvSimulator } from '../simulators/inv/server.js';
import { SiSimulator } from '../simulators/si/server.js';
import { TaxSimulator } from '../simulators/tax/server.js';
import { PsSimulator } from '../simulators/ps/server.js';
import { ADMIN_TOKEN, EVENT_SECRET } from './gateway.js';
import { makeTestPki, type TestPki } from './pki.js';
import { PlatformReceiver } from './platform.js';
import { startTestRedis } from './redis.js';
import { sampleCaseFor } from '../fixtures/cases.js';

/** Items whose routes together reach all four departments (企业开办 goes to tax and si at once). */
export const MIXED_ITEMS: Array<{ itemCode: string; departments: DepartmentId[] }> = [
  { itemCode: '640100-INV-0201', departments: ['inv'] },
  { itemCode: '640100-SI-0101', departments: ['si'] },
  { itemCode: '640100-TAX-0301', departments: ['tax'] },
  { itemCode: '640100-PS-0301', departments: ['ps'] },
  { itemCode: '640100-QYKB-0001', departments: ['tax', 'si'] },
];

export function mixedCase(prefix: string, i: number) {
  const item = MIXED_ITEMS[i % MIXED_ITEMS.length]!;
  const caseNo = `${prefix}-${String(i).padStart(6, '0')}`;
  return { caseNo, departments: item.departments, body: sampleCaseFor(item.itemCode, caseNo) };
}

export interface Stack {
  redis: Awaited<ReturnType<typeof startTestRedis>>;
  inv: InvSimulator;
  si: SiSimulator;
  tax: TaxSimulator;
  ps: PsSimulator;
  pki: TestPki;
  platform: PlatformReceiver;
  platformUrl: string;
  /** Environment for `spawnGateway`: all four departments on, tuned for fast test runs. */
  env(extra?: Record<string, string>): Record<string, string>;
  /** How many times each department accepted each idempotency key. */
  accepted(): Record<DepartmentId, Map<string, number>>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Simulated department answer time (inv, tax), ms. */
  latencyMs?: number;
  reviewDelayMs?: number;
  decisionDelayMs?: number;
}

export async function startStack(o: StackOptions = {}): Promise<Stack> {
  const review = o.reviewDelayMs ?? 200;
  const decision = o.decisionDelayMs ?? 300;
  const redis = await startTestRedis();
  const pki = makeTestPki();
  const inv = new InvSimulator({ reviewDelayMs: review, decisionDelayMs: decision, ratePerSecond: 100_000, latencyMs: o.latencyMs ?? 0 });
  const si = new SiSimulator({ password: 'sim-si-password', reviewDelayMs: review, decisionDelayMs: decision });
  const tax = new TaxSimulator({ appSecret: 'sim-tax-secret', reviewDelayMs: review, decisionDelayMs: decision, ratePerSecond: 100_000 });
  const ps = new PsSimulator({ key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, reviewDelayMs: review, decisionDelayMs: decision });
  await Promise.all([inv.listen(), si.listen(), tax.listen(), ps.listen()]);
  const platform = new PlatformReceiver(EVENT_SECRET);
  const platformUrl = await platform.listen();
  return {
    redis,
    inv,
    si,
    tax,
    ps,
    pki,
    platform,
    platformUrl,
    env(extra = {}) {
      const e: Record<string, string> = {
        REDIS_URL: redis.url,
        GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
        GATEWAY_PLATFORM_EVENT_SECRET: EVENT_SECRET,
        GATEWAY_PLATFORM_DEFAULT_CALLBACK_URL: platformUrl,
        GATEWAY_LOG_LEVEL: 'warn',
        GATEWAY_SERVER_CLIENT_RATE_PER_SECOND: '100000',
        GATEWAY_WORKER_LOCK_DURATION_MS: '3000',
        GATEWAY_WORKER_STALLED_INTERVAL_MS: '1000',
        GATEWAY_RECONCILER_INTERVAL_MS: '1000',
        GATEWAY_RECONCILER_ENQUEUE_GRACE_MS: '2000',
        GATEWAY_DEPARTMENTS_INV_BASE_URL: inv.url,
        GATEWAY_DEPARTMENTS_INV_CLIENT_SECRET: 'sim-client-secret',
        GATEWAY_DEPARTMENTS_INV_WEBHOOK_SECRET: 'sim-webhook-secret',
        GATEWAY_DEPARTMENTS_SI_BASE_URL: si.url,
        GATEWAY_DEPARTMENTS_SI_PASSWORD: 'sim-si-password',
        GATEWAY_DEPARTMENTS_TAX_BASE_URL: tax.url,
        GATEWAY_DEPARTMENTS_TAX_APP_SECRET: 'sim-tax-secret',
        GATEWAY_DEPARTMENTS_PS_BASE_URL: ps.url,
        GATEWAY_DEPARTMENTS_PS_CA_FILE: pki.caFile,
        GATEWAY_DEPARTMENTS_PS_CERT_FILE: pki.clientCertFile,
        GATEWAY_DEPARTMENTS_PS_KEY_FILE: pki.clientKeyFile,
      };
      for (const d of ['INV', 'SI', 'TAX', 'PS']) {
        e[`GATEWAY_DEPARTMENTS_${d}_ENABLED`] = 'true';
        e[`GATEWAY_DEPARTMENTS_${d}_CONCURRENCY`] = '16';
        e[`GATEWAY_DEPARTMENTS_${d}_RATE_LIMIT_MAX`] = '5000';
        e[`GATEWAY_DEPARTMENTS_${d}_RETRY_BASE_DELAY_MS`] = '200';
        e[`GATEWAY_DEPARTMENTS_${d}_RETRY_MAX_DELAY_MS`] = '2000';
        e[`GATEWAY_DEPARTMENTS_${d}_RETRY_ATTEMPTS`] = '1000';
        e[`GATEWAY_DEPARTMENTS_${d}_POLL_INTERVAL_SECONDS`] = '1';
        e[`GATEWAY_DEPARTMENTS_${d}_POLL_MAX_INTERVAL_SECONDS`] = '2';
        e[`GATEWAY_DEPARTMENTS_${d}_RECONCILE_AFTER_SECONDS`] = '10';
        e[`GATEWAY_DEPARTMENTS_${d}_CIRCUIT_OPEN_MS`] = '500';
        e[`GATEWAY_DEPARTMENTS_${d}_CIRCUIT_MAX_OPEN_MS`] = '3000';
      }
      e.GATEWAY_PLATFORM_EVENT_RETRY_BASE_DELAY_MS = '200';
      e.GATEWAY_PLATFORM_EVENT_RETRY_MAX_DELAY_MS = '2000';
      return { ...e, ...extra };
    },
    accepted() {
      return { inv: inv.accepted, si: si.accepted, tax: tax.accepted, ps: ps.accepted };
    },
    async close() {
      await Promise.all([inv.close(), si.close(), tax.close(), ps.close(), platform.close()]);
      await redis.cleanup();
      pki.cleanup();
    },
  };
}
