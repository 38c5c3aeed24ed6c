/**
 * The queue dashboard (@bull-board) at /ops/queues, for ops only. A browser logs in at /ops/login
 * with an ops (or admin) token and gets a session cookie (HttpOnly, SameSite=Strict, Secure when
 * served over TLS, 8 h in Redis); bearer tokens work too. Everything under /ops/queues — page,
 * API and static files — answers 401 without either, 403 for another role.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RedisClient } from '../queue/redis-client.js';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import { GatewayError } from '../model/errors.js';
import type { Principal, TokenStore } from './tokens.js';

const SESSION_TTL_S = 8 * 3600;
const COOKIE = 'gw_ops';

export interface DashboardDeps {
  redis: RedisClient;
  ns: string;
  tokens: TokenStore;
  queues: () => Queue[];
}

function cookie(req: FastifyRequest): string | undefined {
  const m = /(?:^|;\s*)gw_ops=([A-Za-z0-9_-]{20,})/.exec(String(req.headers.cookie ?? ''));
  return m?.[1];
}

const LOGIN_PAGE = `<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>Gateway ops login</title></head>
<body><h1>Gateway ops</h1><form id="f"><label>Ops token <input id="t" type="password" autocomplete="off" required></label> <button>Log in</button></form><p id="m"></p>
<script>
document.getElementById('f').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await fetch('/ops/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: document.getElementById('t').value }) });
  if (r.ok) location.href = '/ops/queues'; else document.getElementById('m').textContent = 'refused (' + r.status + ')';
});
</script></body></html>`;

export async function registerDashboard(app: FastifyInstance, d: DashboardDeps): Promise<void> {
  const key = (id: string) => `{${d.ns}}:ops-session:${id}`;

  async function principalOf(req: FastifyRequest): Promise<Principal | null> {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)$/i.exec(h) : null;
    if (m) return d.tokens.authenticate(m[1]!);
    const sid = cookie(req);
    if (!sid) return null;
    const tokenId = await d.redis.get(key(sid));
    return tokenId ? d.tokens.byId(tokenId) : null;
  }

  app.get('/ops/login', async (_req, reply) => reply.type('text/html; charset=utf-8').header('Content-Security-Policy', "default-src 'none'; script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'").send(LOGIN_PAGE));
  app.post('/ops/login', async (req, reply) => {
    const token = (req.body as { token?: unknown } | undefined)?.token;
    const p = typeof token === 'string' ? await d.tokens.authenticate(token) : null;
    if (!p) throw new GatewayError('UNAUTHENTICATED', 'unknown or revoked token');
    if (p.role !== 'ops' && p.role !== 'admin') throw new GatewayError('FORBIDDEN', `role ${p.role} may not open the dashboard`);
    const sid = randomBytes(24).toString('base64url');
    await d.redis.set(key(sid), p.id, 'EX', SESSION_TTL_S);
    const secure = req.protocol === 'https' ? '; Secure' : '';
    reply.header('Set-Cookie', `${COOKIE}=${sid}; Path=/ops; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_S}${secure}`);
    return { ok: true };
  });

  const board = new FastifyAdapter();
  board.setBasePath('/ops/queues');
  createBullBoard({ queues: d.queues().map((q) => new BullMQAdapter(q, { readOnlyMode: false })), serverAdapter: board, options: { uiConfig: { boardTitle: 'Gateway queues' } } });
  await app.register(
    async (scope) => {
      scope.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
        const p = await principalOf(req);
        // Answered here, not thrown: bull-board's plugin has an error handler of its own.
        if (!p) {
          const wantsHtml = String(req.headers.accept ?? '').includes('text/html');
          if (wantsHtml) return reply.status(401).type('text/html; charset=utf-8').send('<!doctype html><p>Log in first: <a href="/ops/login">/ops/login</a></p>');
          return reply.status(401).type('application/json; charset=utf-8').send(new GatewayError('UNAUTHENTICATED', 'log in at /ops/login, or send an ops Bearer token').toBody());
        }
        if (p.role !== 'ops' && p.role !== 'admin') return reply.status(403).type('application/json; charset=utf-8').send(new GatewayError('FORBIDDEN', `role ${p.role} may not open the dashboard`).toBody());
        req.principal = p;
      });
      // The dashboard's own scripts and styles must run: a narrower CSP than the API's deny-all.
      scope.addHook('onSend', async (_req, reply, payload) => {
        reply.header('Content-Security-Policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
        reply.header('Cache-Control', 'no-store');
        return payload;
      });
      await scope.register(board.registerPlugin(), { prefix: '/ops/queues' });
    },
  );
}
