/**
 * Wires one gateway process: Redis (given, or the embedded child), the ledger, mappings, tokens,
 * queues, connectors; then the API and/or the workers, by role.
 */
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { DepartmentId } from '../model/case.js';
import type { Connector } from '../connectors/types.js';
import { PsConnector } from '../connectors/ps/index.js';
import { TrustStore } from '../certs/trust-store.js';
import { Licences } from '../certs/licences.js';
import { Metrics } from './metrics.js';
import { Circuits } from '../queue/circuit.js';
import { SiConnector } from '../connectors/si/index.js';
import { TaxConnector } from '../connectors/tax/index.js';
import { InvConnector } from '../connectors/inv/index.js';
import { MappingStore } from '../mappings/store.js';
import { Ledger } from '../queue/ledger.js';
import { Queues } from '../queue/queues.js';
import { clusterTarget, createCommandClient, describeTarget, sentinelTarget, type RedisClient, type RedisTarget } from '../queue/redis-client.js';
import { Reconciler } from '../queue/reconciler.js';
import { OutboxDispatcher, OUTBOX_DEFAULTS } from '../queue/outbox.js';
import { WorkerPool, type DeptWorkerSettings } from '../queue/workers.js';
import { WATCHDOG_DEFAULTS } from '../queue/watchdog.js';
import { ReplicaBarrier } from '../queue/durability.js';
import { buildApp } from './app.js';
import type { GatewayConfig } from './config.js';
import { embeddedPassword, PASSWORD_FILE, startEmbeddedRedis, type EmbeddedRedis } from './embedded-redis.js';
import { TokenStore } from './tokens.js';

export interface Gateway {
  /** Base URL of the API, when this process serves it. */
  url: string | null;
  app: FastifyInstance | null;
  /** Where this process keeps its state (no password): a redis:// URL, `cluster host:port,…` or `sentinel name@host:port,…`. */
  redisTarget: string;
  redis: RedisClient;
  ledger: Ledger;
  queues: Queues;
  mappings: MappingStore;
  workers: WorkerPool | null;
  reconciler: Reconciler | null;
  close(deadlineMs?: number): Promise<void>;
}

export function buildConnectors(cfg: GatewayConfig, log: Logger): Map<DepartmentId, Connector> {
  const m = new Map<DepartmentId, Connector>();
  const inv = cfg.departments.inv;
  if (inv.enabled)
    m.set(
      'inv',
      new InvConnector(
        {
          baseUrl: inv.baseUrl,
          clientId: inv.clientId,
          clientSecret: inv.clientSecret!,
          webhookSecret: inv.webhookSecret!,
          scope: inv.scope,
          timeoutMs: inv.timeoutMs,
          maxAnswerBytes: inv.maxAnswerBytes,
          callbackToleranceSeconds: inv.callbackToleranceSeconds,
        },
        log.child({ department: 'inv' }),
      ),
    );
  const si = cfg.departments.si;
  if (si.enabled)
    m.set('si', new SiConnector({ baseUrl: si.baseUrl, username: si.username, password: si.password!, timeoutMs: si.timeoutMs, maxAnswerBytes: si.maxAnswerBytes }, log.child({ department: 'si' })));
  const ps = cfg.departments.ps;
  if (ps.enabled)
    m.set(
      'ps',
      new PsConnector(
        { baseUrl: ps.baseUrl, senderCode: ps.senderCode, caFile: ps.caFile!, certFile: ps.certFile!, keyFile: ps.keyFile!, timeoutMs: ps.timeoutMs, maxAnswerBytes: ps.maxAnswerBytes },
        log.child({ department: 'ps' }),
      ),
    );
  const tax = cfg.departments.tax;
  if (tax.enabled)
    m.set(
      'tax',
      new TaxConnector(
        { baseUrl: tax.baseUrl, appId: tax.appId, appSecret: tax.appSecret!, timeoutMs: tax.timeoutMs, maxAnswerBytes: tax.maxAnswerBytes, callbackToleranceSeconds: tax.callbackToleranceSeconds, callbackPath: tax.callbackPath },
        log.child({ department: 'tax' }),
      ),
    );
  return m;
}

export async function startGateway(cfg: GatewayConfig, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<Gateway> {
  let embedded: EmbeddedRedis | null = null;
  let target: RedisTarget;
  const cluster = cfg.redis.cluster;
  const sentinel = cfg.redis.sentinel;
  if (cluster.nodes.length) {
    target = clusterTarget(cluster.nodes, cluster);
  } else if (sentinel.nodes.length) {
    target = sentinelTarget(sentinel.nodes, sentinel.masterName, sentinel);
  } else if (cfg.redis.url) {
    target = { kind: 'single', url: cfg.redis.url };
  } else {
    const dir = resolve(cfg.redis.embeddedDir);
    embedded = await startEmbeddedRedis({ dir, binary: cfg.redis.embeddedBinary, password: embeddedPassword(dir) });
    target = { kind: 'single', url: embedded.url };
    log.warn(
      { redis: describeTarget(target), dir: embedded.dir, passwordFile: join(dir, PASSWORD_FILE) },
      'no REDIS_URL: started an embedded redis-server (AOF, appendfsync always, password required); fine for one server, set REDIS_URL beyond that',
    );
  }
  const redisTarget = describeTarget(target);
  // Fails fast while Redis is away, so the API answers 503 at once instead of hanging.
  const redis = createCommandClient(target);
  redis.on('error', (e: Error) => log.debug({ err: e.message }, 'redis connection error'));
  await redis.connect();
  log.info({ redis: redisTarget }, 'connected to Redis');

  const ns = cfg.redis.namespace;
  const ledger = new Ledger(redis, ns);
  const mappings = new MappingStore(redis, ns, log.child({ part: 'mappings' }));
  await mappings.installSeeds(resolve(cfg.mappings.seedsDir));
  await mappings.refresh();
  mappings.startReloading(cfg.mappings.reloadIntervalMs);
  const trust = new TrustStore(redis, ns, log.child({ part: 'trust' }));
  await trust.installSeeds(resolve(cfg.certs.anchorsDir));
  await trust.refresh(true);
  trust.startReloading(cfg.certs.reloadIntervalMs);
  const metrics = new Metrics(
    () => [...[...connectors.keys()].map((d) => ({ name: `dept-${d}`, queue: queues.dept(d) })), { name: 'notify', queue: queues.notify }],
    () => ledger.outboxStats(),
  );
  const circuits = new Circuits(redis, ns, (d) => dcfg(d).circuit, (d, state) => {
    metrics.circuitState.set({ department: d }, state === 'closed' ? 0 : state === 'half-open' ? 1 : 2);
    log[state === 'open' ? 'error' : 'info']({ department: d, circuit: state }, `circuit ${state} for ${d}`);
  });
  const licences = new Licences(trust, (verdict, source) => metrics.licenceVerifications.inc({ verdict, source }));

  // One barrier per process, on the command connection every ledger write goes through.
  const replicas = new ReplicaBarrier(redis, ns, { replicas: cfg.redis.waitReplicas, timeoutMs: cfg.redis.waitTimeoutMs }, (seconds, confirmed) =>
    metrics.replicaWaits.observe({ outcome: confirmed ? 'confirmed' : 'short' }, seconds),
  );

  const dcfg = (d: DepartmentId) => cfg.departments[d];
  const queues = new Queues(redis, ns, (d) => dcfg(d).retry, cfg.platform.eventRetry);
  const connectors = buildConnectors(cfg, log);

  let workers: WorkerPool | null = null;
  let reconciler: Reconciler | null = null;
  let outbox: OutboxDispatcher | null = null;
  if (cfg.role !== 'api') {
    if (!cfg.platform.eventSecret) throw new Error('platform.eventSecret is required to sign events: set GATEWAY_PLATFORM_EVENT_SECRET');
    const departments = new Map<DepartmentId, DeptWorkerSettings>();
    for (const d of connectors.keys()) departments.set(d, { concurrency: dcfg(d).concurrency, rateLimit: dcfg(d).rateLimit, maxDelayMs: dcfg(d).retry.maxDelayMs });
    workers = new WorkerPool({
      redis: target,
      ns,
      departments,
      log,
      materials: { archiveToken: cfg.platform.archiveToken, downloadTimeoutMs: cfg.platform.archiveTimeoutMs },
      stall: { lockDurationMs: cfg.worker.lockDurationMs, stalledIntervalMs: cfg.worker.stalledIntervalMs, maxStalledCount: cfg.worker.maxStalledCount },
      queues,
      watchdog: { ...WATCHDOG_DEFAULTS, stuckAfterMs: cfg.worker.stuckAfterMs, checkIntervalMs: Math.max(100, Math.min(WATCHDOG_DEFAULTS.checkIntervalMs, cfg.worker.stuckAfterMs / 4)) },
      delivery: {
        ledger,
        queues,
        connectors,
        log,
        mappings,
        licences,
        circuits,
        metrics,
        checkAfterMs: (d) => dcfg(d).reconcileAfterSeconds * 1000,
        pollEvery: (d) => ({ firstMs: dcfg(d).pollIntervalSeconds * 1000, maxMs: Math.max(dcfg(d).pollIntervalSeconds, dcfg(d).pollMaxIntervalSeconds) * 1000 }),
        authPauseMs: (d) => dcfg(d).authPauseMs,
      },
      notify: {
        ledger,
        log,
        secret: cfg.platform.eventSecret,
        defaultCallbackUrl: cfg.platform.defaultCallbackUrl,
        timeoutMs: cfg.platform.eventTimeoutMs,
        replicas: replicas.enabled ? replicas : undefined,
        concurrency: cfg.platform.eventConcurrency,
        maxDelayMs: cfg.platform.eventRetry.maxDelayMs,
      },
    });
    workers.start();
    outbox = new OutboxDispatcher(ledger, queues, log.child({ part: 'outbox' }), { ...OUTBOX_DEFAULTS, leaseMs: cfg.reconciler.enqueueGraceMs });
    outbox.start();
    reconciler = new Reconciler(redis, ledger, queues, log.child({ part: 'reconciler' }), cfg.reconciler.intervalMs, cfg.reconciler.enqueueGraceMs, [...connectors.keys()]);
    reconciler.start();
  }

  let app: FastifyInstance | null = null;
  let url: string | null = null;
  if (cfg.role !== 'worker') {
    const adminToken = env.GATEWAY_ADMIN_TOKEN;
    if (!adminToken) log.warn('GATEWAY_ADMIN_TOKEN is not set: no admin can make tokens, so no client can call the API');
    const tokens = new TokenStore(redis, ns, adminToken);
    app = buildApp({
      redis,
      ns,
      ledger,
      queues,
      mappings,
      tokens,
      trust,
      licences,
      metrics,
      circuits,
      connectors,
      log,
      bodyLimitBytes: cfg.server.bodyLimitBytes,
      callbackBodyLimitBytes: Math.max(0, ...[...connectors.keys()].map((dept) => dcfg(dept).maxAnswerBytes)),
      requestTimeoutMs: cfg.server.requestTimeoutMs,
      clientRatePerSecond: cfg.server.clientRatePerSecond,
      replicas,
      https: cfg.server.tls.certFile
        ? {
            key: readFileSync(cfg.server.tls.keyFile!),
            cert: readFileSync(cfg.server.tls.certFile),
            ...(cfg.server.tls.caFile ? { ca: readFileSync(cfg.server.tls.caFile) } : {}),
            // Asked at TLS, enforced for /v1 only: departments' signed callbacks come without one.
            requestCert: cfg.server.tls.requireClientCert,
            rejectUnauthorized: false,
          }
        : null,
      usccExceptions: new Set(cfg.identifiers.usccExceptions),
      readiness: (): Record<string, boolean> => (workers ? { workers: workers.running() } : {}),
    });
    url = await app.listen({ host: cfg.server.host, port: cfg.server.port });
    log.info({ url, role: cfg.role }, 'gateway API listening');
  }

  let closed = false;
  return {
    url,
    app,
    redisTarget,
    redis,
    ledger,
    queues,
    mappings,
    workers,
    reconciler,
    async close(deadlineMs = 10_000) {
      if (closed) return;
      closed = true;
      // Stop taking work first, then let running jobs finish within the deadline.
      await app?.close();
      await outbox?.stop();
      await reconciler?.stop();
      await workers?.close(deadlineMs);
      mappings.stop();
      trust.stop();
      await queues.close();
      await Promise.all([...connectors.values()].map((c) => c.close()));
      redis.disconnect();
      await embedded?.stop();
    },
  };
}
