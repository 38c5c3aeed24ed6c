/** The HTTP edge: one fastify app for /v1, /admin/v1, /callbacks and /health. */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { isRedisUnavailable, type RedisClient } from '../queue/redis-client.js';
import type { Logger } from 'pino';
import { DEPARTMENTS, isDepartment, type DepartmentId } from '../model/case.js';
import { GatewayError } from '../model/errors.js';
import type { Connector } from '../connectors/types.js';
import type { MappingStore } from '../mappings/store.js';
import { caseView, isListCursor, type Ledger } from '../queue/ledger.js';
import type { Queues } from '../queue/queues.js';
import { applyDepartmentEvent } from '../queue/results.js';
import { registerMappingRoutes } from './admin-mappings.js';
import { Intake } from './intake.js';
import { TrustError, type TrustStore } from '../certs/trust-store.js';
import type { Licences } from '../certs/licences.js';
import type { Metrics } from './metrics.js';
import type { Circuits } from '../queue/circuit.js';
import { registerOpsRoutes } from './ops.js';
import { registerDashboard } from './dashboard.js';
import { isEnvelope } from '../certs/verify.js';
import { supplementCase, withdrawCase } from './case-actions.js';
import { audit, isRole, type Principal, type Role, type TokenStore } from './tokens.js';
import type { ReplicaBarrier } from '../queue/durability.js';

declare module 'fastify' {
  interface FastifyInstance {
    gatewayRoutes: { method: string; url: string }[];
  }
  interface FastifyRequest {
    principal?: Principal;
    rawBody?: Buffer;
    /** The request's writes were confirmed by the replicas already (the handler waited itself). */
    replicated?: boolean;
    /** The Redis connection epoch when the request came in (ReplicaBarrier.epoch). */
    redisEpoch?: number;
  }
  interface FastifyContextConfig {
    /** A POST that only computes (verification, preview): nothing for the replicas to confirm. */
    writesNothing?: boolean;
  }
}

export interface AppDeps {
  redis: RedisClient;
  ns: string;
  ledger: Ledger;
  queues: Queues;
  mappings: MappingStore;
  tokens: TokenStore;
  trust: TrustStore;
  licences: Licences;
  metrics: Metrics;
  circuits: Circuits;
  connectors: ReadonlyMap<DepartmentId, Connector>;
  log: Logger;
  bodyLimitBytes: number;
  usccExceptions: ReadonlySet<string>;
  /** HTTPS, and optionally mutual TLS for platform clients. */
  https?: { key: Buffer; cert: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: boolean } | null;
  /** Requests a second per client on /v1 (per process). */
  clientRatePerSecond?: number;
  /** Extra readiness checks (e.g. this process's workers). */
  readiness?: () => Record<string, boolean>;
  /** The body limit of department callbacks and licence verification: the largest answer a department may give (maxAnswerBytes). */
  callbackBodyLimitBytes?: number;
  /** How long a request may take to arrive, headers and body (408 after that). */
  requestTimeoutMs?: number;
  /** When set and enabled: no write is acknowledged before the replicas confirm it (redis.waitReplicas). */
  replicas?: ReplicaBarrier;
}

/** The largest CRL an admin may post (PEM or Base64 DER in JSON). */
const CRL_BODY_LIMIT_BYTES = 16 * 1024 * 1024;

/** Bodies declared over the limit but under this are drained before the 413 (see the onRequest hook). */
const DRAIN_LIMIT_BYTES = 16 * 1024 * 1024;

export function sendError(reply: FastifyReply, e: GatewayError) {
  return reply.status(e.status).type('application/json; charset=utf-8').send(e.toBody());
}

/**
 * What Node's HTTP parser refuses before any route sees it (a request that did not arrive in time,
 * headers too large, bytes that are not HTTP): answered in the API's own error format, then closed.
 */
function clientErrorHandler(err: Error & { code?: string }, socket: import('node:stream').Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, e] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', new GatewayError('REQUEST_TIMEOUT', 'the request did not arrive whole in time')]
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', new GatewayError('HEADERS_TOO_LARGE', 'the request headers are too large')]
        : [400, 'Bad Request', new GatewayError('MALFORMED_HTTP', 'the request is not valid HTTP/1.1')];
  const body = JSON.stringify(e.toBody());
  if (socket.writable)
    socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy();
}

export function buildApp(d: AppDeps): FastifyInstance {
  // A request must arrive whole within requestTimeoutMs (Fastify's default is no limit): a client
  // trickling its body cannot hold a connection for ever. Node applies the limits only when the
  // server is made with them, and checks every connectionsCheckingInterval.
  const requestTimeout = d.requestTimeoutMs ?? 30_000;
  const checking = { connectionsCheckingInterval: Math.min(1000, requestTimeout), requestTimeout, headersTimeout: Math.min(60_000, requestTimeout) };
  const common = { bodyLimit: d.bodyLimitBytes, trustProxy: false, return503OnClosing: true, requestTimeout, clientErrorHandler };
  const app = (d.https ? Fastify({ ...common, https: { ...d.https, ...checking } }) : Fastify({ ...common, http: checking })) as unknown as FastifyInstance;
  /** Bodies that may carry an e-licence with its file (callbacks, verification): a department answer's limit. */
  const licenceBodyLimit = Math.max(d.bodyLimitBytes, d.callbackBodyLimitBytes ?? 0);
  /** The body limit of the route asked for (department callbacks take larger bodies). */
  const limitOf = (req: FastifyRequest) => req.routeOptions.bodyLimit ?? d.bodyLimitBytes;
  // Every route registered, so a test can walk them all and prove each is guarded.
  const routes: { method: string; url: string }[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m, url: r.url });
  });
  app.decorate('gatewayRoutes', routes);
  const intake = new Intake({ ledger: d.ledger, mappings: d.mappings, log: d.log, usccExceptions: d.usccExceptions, connected: new Set(d.connectors.keys()) });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    req.rawBody = body;
    if (body.length === 0) return done(new GatewayError('MALFORMED_JSON', 'the body is empty'), undefined);
    try {
      done(null, JSON.parse(body.toString('utf8')));
    } catch (e) {
      done(new GatewayError('MALFORMED_JSON', `the body is not valid JSON: ${(e as Error).message}`), undefined);
    }
  });

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    if (err instanceof GatewayError) return sendError(reply, err);
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendError(reply, new GatewayError('BODY_TOO_LARGE', `the body exceeds ${limitOf(req)} bytes`));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendError(reply, new GatewayError('UNSUPPORTED_MEDIA_TYPE', `unsupported Content-Type ${String(req.headers['content-type'] ?? '(none)')}`));
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return sendError(reply, new GatewayError('MALFORMED_JSON', 'the body is empty'));
    }
    if (isRedisUnavailable(err)) {
      d.log.error({ err: err.message, url: req.routeOptions.url }, 'Redis unavailable');
      return sendError(reply, new GatewayError('SERVICE_UNAVAILABLE', 'the gateway store is unavailable; retry later'));
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
      return reply.status(err.statusCode).send({ error: { code: 'BAD_REQUEST', message: err.message, details: [] } });
    d.log.error({ err, url: req.routeOptions.url }, 'unhandled error');
    return sendError(reply, new GatewayError('INTERNAL', 'internal error'));
  });
  // A body declared too large is read and dropped before the 413, so the client, still writing,
  // reads the answer instead of a broken pipe (Fastify alone closes the connection under it).
  // Beyond DRAIN_LIMIT_BYTES it is not worth reading: Fastify's close applies.
  app.addHook('onRequest', async (req, reply) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    // The common case first: the route's options are built on every read, so read them only when needed.
    if (!(declared > d.bodyLimitBytes) || !(declared > limitOf(req)) || declared > DRAIN_LIMIT_BYTES) return;
    await new Promise<void>((resolve) => {
      req.raw.on('data', () => undefined);
      req.raw.once('end', resolve);
      req.raw.once('error', resolve);
      req.raw.once('close', resolve);
    });
    return sendError(reply, new GatewayError('BODY_TOO_LARGE', `the body exceeds ${limitOf(req)} bytes`));
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, new GatewayError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)));
  // A change is acknowledged only once the replicas hold it, when the installation asks for that:
  // every 2xx answer to a POST, PUT or DELETE waits for them (the callbacks wait in their handler).
  const replicas = d.replicas?.enabled ? d.replicas : null;
  if (replicas) {
    // The connection the request's writes will go out on, before any of them.
    app.addHook('onRequest', (req, _reply, done) => {
      req.redisEpoch = replicas.epoch;
      done();
    });
    app.addHook('onSend', async (req, reply, payload) => {
      if (req.replicated || req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS' || reply.statusCode >= 300 || req.routeOptions.config?.writesNothing) return payload;
      try {
        await replicas.wait(req.redisEpoch);
        return payload;
      } catch (e) {
        const err = e instanceof GatewayError ? e : new GatewayError('SERVICE_UNAVAILABLE', 'the gateway store is unavailable; retry later');
        if (!(e instanceof GatewayError)) d.log.error({ err: (e as Error).message, url: req.routeOptions.url }, 'Redis unavailable while waiting for replicas');
        else d.log.warn({ url: req.routeOptions.url, err: err.message }, 'write not confirmed by the replicas in time; answered 503');
        reply.code(err.status).header('Retry-After', '1').type('application/json; charset=utf-8');
        return JSON.stringify(err.toBody());
      }
    });
  }
  // Security headers on every answer: nothing here is for a browser to sniff, frame or cache.
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('X-Frame-Options', 'DENY');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('Cache-Control', 'no-store');
    if (!reply.hasHeader('Content-Security-Policy')) reply.header('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    d.log.info({ method: req.method, route: req.routeOptions.url ?? 'unknown', status: reply.statusCode, ms: Math.round(reply.elapsedTime), client: req.principal?.name }, 'http');
  });

  /** Authenticates the bearer token; `allowed` says which roles may pass. */
  const guard = (allowed: (r: Role) => boolean) => async (req: FastifyRequest) => {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)$/i.exec(h) : null;
    if (!m) throw new GatewayError('UNAUTHENTICATED', 'a Bearer token is required');
    const p = await d.tokens.authenticate(m[1]!);
    if (!p) throw new GatewayError('UNAUTHENTICATED', 'unknown or revoked token');
    if (p.role !== 'admin' && !allowed(p.role)) throw new GatewayError('FORBIDDEN', `role ${p.role} may not do this`);
    req.principal = p;
  };
  // Per-client rate limit on /v1: a token bucket per principal, refilled every second.
  const perSecond = d.clientRatePerSecond ?? 200;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const platformGuard = guard((r) => r === 'platform');
  const platformOnly = async (req: FastifyRequest, reply: FastifyReply) => {
    // Mutual TLS for platform clients, when configured: a certificate from the configured CA.
    if (d.https?.requestCert && !(req.raw.socket as import('node:tls').TLSSocket).authorized)
      throw new GatewayError('UNAUTHENTICATED', 'a client certificate issued by the configured CA is required');
    await platformGuard(req);
    const id = req.principal!.id;
    const now = Date.now();
    const b = buckets.get(id) ?? { tokens: perSecond, at: now };
    b.tokens = Math.min(perSecond, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    buckets.set(id, b);
    if (b.tokens < 1) {
      reply.header('Retry-After', '1');
      throw new GatewayError('RATE_LIMITED', `more than ${perSecond} requests a second from this client`);
    }
    b.tokens -= 1;
  };
  registerMappingRoutes(app, { redis: d.redis, ns: d.ns, mappings: d.mappings, connectors: d.connectors, usccExceptions: d.usccExceptions, guard });
  const adminOnly = guard(() => false);

  // ---- platform API
  app.post('/v1/cases', { preHandler: platformOnly }, async (req, reply) => {
    try {
      const { status, view } = await intake.submit(req.body);
      d.metrics.intake.inc({ outcome: status === 202 ? 'accepted' : 'repeat' });
      return reply.status(status).send(view);
    } catch (e) {
      d.metrics.intake.inc({ outcome: e instanceof GatewayError ? e.code : 'error' });
      throw e;
    }
  });

  app.get<{ Params: { caseNo: string } }>('/v1/cases/:caseNo', { preHandler: platformOnly }, async (req, reply) => {
    const doc = /^[A-Za-z0-9_-]{1,64}$/.test(req.params.caseNo) ? await d.ledger.get(req.params.caseNo) : null;
    if (!doc) throw new GatewayError('CASE_NOT_FOUND', `no case ${req.params.caseNo}`);
    return reply.send(caseView(doc));
  });

  const actions = { ledger: d.ledger, queues: d.queues, log: d.log };
  app.post<{ Params: { caseNo: string } }>('/v1/cases/:caseNo/withdraw', { preHandler: platformOnly }, async (req, reply) => {
    const { status, view } = await withdrawCase(actions, req.params.caseNo);
    return reply.status(status).send(view);
  });
  app.post<{ Params: { caseNo: string } }>('/v1/cases/:caseNo/materials', { preHandler: platformOnly }, async (req, reply) => {
    const { status, view } = await supplementCase(actions, req.params.caseNo, req.body);
    return reply.status(status).send(view);
  });

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/cases', { preHandler: platformOnly }, async (req, reply) => {
    const q = req.query;
    const faults = [];
    const known = new Set(['status', 'department', 'since', 'limit', 'cursor']);
    for (const k of Object.keys(q)) if (!known.has(k)) faults.push({ path: k, code: 'UNKNOWN_FIELD', message: 'unknown query parameter' });
    const statuses = ['IN_PROGRESS', 'DONE', 'QUEUED', 'SUBMITTED', 'IN_REVIEW', 'RETURNED', 'APPROVED', 'REJECTED', 'FAILED', 'WITHDRAWN', 'ATTENTION'];
    if (q.status !== undefined && !statuses.includes(q.status)) faults.push({ path: 'status', code: 'INVALID', message: `must be one of ${statuses.join(', ')}` });
    if (q.department !== undefined && !isDepartment(q.department)) faults.push({ path: 'department', code: 'INVALID', message: `must be one of ${DEPARTMENTS.join(', ')}` });
    if (q.since !== undefined && Number.isNaN(Date.parse(q.since))) faults.push({ path: 'since', code: 'INVALID', message: 'must be an ISO 8601 time' });
    const limit = q.limit === undefined ? 20 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) faults.push({ path: 'limit', code: 'INVALID', message: 'must be an integer from 1 to 100' });
    if (q.cursor !== undefined && !isListCursor(q.cursor)) faults.push({ path: 'cursor', code: 'INVALID', message: 'not a cursor this API gave' });
    if (faults.length) throw new GatewayError('VALIDATION_FAILED', 'invalid query', faults);
    const res = await d.ledger.list({
      limit,
      ...(q.status ? { status: q.status } : {}),
      ...(q.department ? { department: q.department as DepartmentId } : {}),
      ...(q.since ? { since: q.since } : {}),
      ...(q.cursor ? { cursor: q.cursor } : {}),
    });
    return reply.send({ items: res.items.map(caseView), nextCursor: res.nextCursor });
  });

  // ---- ops dashboard (its own scope: its own CSP and login)
  void app.register(async (scope) => registerDashboard(scope, { redis: d.redis, ns: d.ns, tokens: d.tokens, queues: () => [...[...d.connectors.keys()].map((x) => d.queues.dept(x)), d.queues.notify] }));

  // ---- ops
  registerOpsRoutes(app, { redis: d.redis, ns: d.ns, queues: d.queues, enabled: [...d.connectors.keys()], outbox: () => d.ledger.outboxStats(), circuit: (dept) => d.circuits.view(dept), guard });

  // ---- metrics (Prometheus text), for ops
  app.get('/metrics', { preHandler: guard((r) => r === 'ops') }, async (_req, reply) => reply.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics()));

  // ---- licences
  // A licence presented at the window carries its file: taken as large as a department's would be.
  app.post('/v1/licences/verify', { preHandler: platformOnly, config: { writesNothing: true }, bodyLimit: licenceBodyLimit }, async (req) => {
    if (!isEnvelope(req.body)) throw new GatewayError('VALIDATION_FAILED', 'not an e-licence envelope (e-licence.md)', [{ path: '', code: 'NOT_AN_ENVELOPE', message: 'holder, issuer, file and signature objects are required' }]);
    return d.licences.verify(req.body);
  });

  // ---- admin: trust store
  const trustError = (e: unknown) => {
    if (e instanceof TrustError) return new GatewayError('VALIDATION_FAILED', e.message, [{ path: e.path, code: e.code, message: e.message }]);
    return e;
  };
  app.get('/admin/v1/trust/anchors', { preHandler: adminOnly }, async () => ({ items: d.trust.list().anchors }));
  app.post('/admin/v1/trust/anchors', { preHandler: adminOnly }, async (req, reply) => {
    const b = (req.body ?? {}) as { pem?: unknown; issuerCodes?: unknown; departments?: unknown };
    if (typeof b.pem !== 'string') throw new GatewayError('VALIDATION_FAILED', 'pem is required', [{ path: 'pem', code: 'REQUIRED', message: 'a PEM CA certificate' }]);
    try {
      const a = await d.trust.addAnchor(b.pem, b.issuerCodes ?? [], b.departments ?? [], `${req.principal!.name} (${req.principal!.role})`);
      await audit(d.redis, d.ns, req.principal!, 'trust.anchor.add', a.id, null, a);
      return reply.status(201).send(a);
    } catch (e) {
      throw trustError(e);
    }
  });
  app.delete<{ Params: { id: string } }>('/admin/v1/trust/anchors/:id', { preHandler: adminOnly }, async (req, reply) => {
    const before = await d.trust.removeAnchor(req.params.id);
    if (!before) throw new GatewayError('NOT_FOUND', `no anchor ${req.params.id}`);
    await audit(d.redis, d.ns, req.principal!, 'trust.anchor.remove', before.id, before, null);
    return reply.status(204).send();
  });
  app.get('/admin/v1/trust/crls', { preHandler: adminOnly }, async () => ({ items: d.trust.list().crls }));
  // A provincial CA's CRL may list tens of thousands of certificates: megabytes, not the case limit.
  app.post('/admin/v1/trust/crls', { preHandler: adminOnly, bodyLimit: Math.max(d.bodyLimitBytes, CRL_BODY_LIMIT_BYTES) }, async (req, reply) => {
    try {
      const c = await d.trust.addCrl((req.body ?? {}) as { pem?: unknown; der?: unknown }, `${req.principal!.name} (${req.principal!.role})`);
      await audit(d.redis, d.ns, req.principal!, 'trust.crl.add', c.id, null, c);
      return reply.status(201).send(c);
    } catch (e) {
      throw trustError(e);
    }
  });

  // ---- admin: tokens
  app.post('/admin/v1/tokens', { preHandler: adminOnly }, async (req, reply) => {
    const b = req.body as { name?: unknown; role?: unknown } | undefined;
    const faults = [];
    if (!b || typeof b !== 'object') throw new GatewayError('VALIDATION_FAILED', 'body must be an object');
    for (const k of Object.keys(b)) if (k !== 'name' && k !== 'role') faults.push({ path: k, code: 'UNKNOWN_FIELD', message: 'unknown field' });
    if (typeof b.name !== 'string' || !b.name.trim() || b.name.length > 100) faults.push({ path: 'name', code: 'INVALID', message: 'a name of 1–100 characters is required' });
    if (!isRole(b.role)) faults.push({ path: 'role', code: 'INVALID', message: `one of platform, ops, admin, ${DEPARTMENTS.map((x) => `dept-admin:${x}`).join(', ')}` });
    if (faults.length) throw new GatewayError('VALIDATION_FAILED', 'invalid token request', faults);
    const t = await d.tokens.create((b.name as string).trim(), b.role as Role, req.principal!.id);
    await audit(d.redis, d.ns, req.principal!, 'token.create', t.id, null, { id: t.id, name: t.name, role: t.role });
    return reply.status(201).send({ id: t.id, name: t.name, role: t.role, token: t.token });
  });
  app.get('/admin/v1/tokens', { preHandler: adminOnly }, async () => ({
    items: (await d.tokens.list()).map((t) => ({ id: t.id, name: t.name, role: t.role, createdAt: t.createdAt, lastUsedAt: t.lastUsedAt })),
  }));
  app.delete<{ Params: { id: string } }>('/admin/v1/tokens/:id', { preHandler: adminOnly }, async (req, reply) => {
    const rec = await d.tokens.revoke(req.params.id);
    if (!rec) throw new GatewayError('NOT_FOUND', `no token ${req.params.id}`);
    await audit(d.redis, d.ns, req.principal!, 'token.revoke', rec.id, { id: rec.id, name: rec.name, role: rec.role }, null);
    return reply.status(204).send();
  });

  // ---- department callbacks: raw bytes whatever the content type, since signatures cover the raw body.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
      req.rawBody = body;
      done(null, body);
    });
    // A callback may carry an e-licence with its file: as large as a department's answer may be.
    scope.post<{ Params: { dept: string } }>('/callbacks/:dept', { bodyLimit: licenceBodyLimit }, async (req, reply) => {
      const dept = req.params.dept;
      const connector = isDepartment(dept) ? d.connectors.get(dept) : undefined;
      if (!connector?.parseCallback) throw new GatewayError('NOT_FOUND', `no callbacks are taken for ${dept}`);
      const parsed = connector.parseCallback(req.rawBody ?? Buffer.alloc(0), req.headers, Date.now(), { method: req.method, pathAndQuery: req.url });
      if (!parsed.ok) {
        d.log.warn({ department: dept, code: parsed.code, reason: parsed.message }, 'callback refused');
        return reply.status(parsed.status).send(parsed.reply ?? { error: { code: parsed.code, message: parsed.message, details: [] } });
      }
      // A signed request seen before (same nonce) is a replay: refused, whatever it says.
      const replayKey = parsed.replay ? `{${d.ns}}:replay:${dept}:${parsed.replay.id}` : null;
      if (replayKey && (await d.redis.set(replayKey, '1', 'EX', parsed.replay!.ttlSeconds, 'NX')) !== 'OK') {
        d.log.warn({ department: dept, code: 'REPLAYED' }, 'callback refused: nonce already seen');
        return reply.status(401).send({ error: { code: 'REPLAYED', message: 'this nonce was already used', details: [] } });
      }
      try {
        for (const ev of parsed.events) {
          const ref =
            (ev.key ? await d.ledger.findByRouteKey(ev.key) : null) ?? (ev.receiptNo ? await d.ledger.findByReceipt(connector.department, ev.receiptNo) : null);
          if (!ref || ref.department !== connector.department) {
            d.log.warn({ department: dept, receiptNo: ev.receiptNo }, 'callback for a route this gateway does not know');
            throw new GatewayError('CASE_NOT_FOUND', 'no route matches this callback');
          }
          // Recorded durably (AOF always) before the department hears 2xx.
          await applyDepartmentEvent({ ledger: d.ledger, queues: d.queues, log: d.log, mappings: d.mappings, licences: d.licences }, ref.caseNo, ref.department, ev.event);
        }
        // Confirmed by the replicas, when asked for, before the 2xx: within the try, so a department
        // told 503 may send the same request (nonce) again.
        if (replicas) await replicas.wait(req.redisEpoch);
        req.replicated = true;
      } catch (e) {
        // Not recorded: the department will send it again, perhaps with the same nonce.
        if (replayKey) await d.redis.del(replayKey).catch(() => undefined);
        throw e;
      }
      return reply.status(200).send(parsed.reply);
    });
  });

  // ---- health
  app.get('/health/live', async () => ({ status: 'live' }));
  app.get('/health/ready', async (_req, reply) => {
    let redis = false;
    try {
      redis = (await Promise.race([d.redis.ping(), new Promise((r) => setTimeout(() => r('timeout'), 1000))])) === 'PONG';
    } catch {
      redis = false;
    }
    const checks: Record<string, boolean> = { redis, mappings: d.mappings.ready(), ...(d.readiness?.() ?? {}) };
    const ready = Object.values(checks).every(Boolean);
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', checks });
  });

  return app;
}
