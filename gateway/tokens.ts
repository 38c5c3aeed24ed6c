/**
 * Bearer tokens (specs/admin-ops-api.md, Roles). The admin token comes from GATEWAY_ADMIN_TOKEN at
 * start; every other token is made through /admin/v1/tokens and stored only as its SHA-256 (tokens
 * are 256 random bits, so a fast hash is enough). A process looks a token up in Redis at most once
 * every TOKEN_CACHE_MS, so a revocation is refused at once by the process that made it and within
 * TOKEN_CACHE_MS by every other.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { RedisClient } from '../queue/redis-client.js';
import { isDepartment } from '../model/case.js';

export type Role = 'platform' | 'ops' | 'admin' | `dept-admin:${string}`;

export function isRole(r: unknown): r is Role {
  if (r === 'platform' || r === 'ops' || r === 'admin') return true;
  return typeof r === 'string' && r.startsWith('dept-admin:') && isDepartment(r.slice('dept-admin:'.length));
}

export interface Principal {
  id: string;
  name: string;
  role: Role;
}

export interface TokenRecord extends Principal {
  createdAt: string;
  createdBy: string;
}

/** How long a process trusts a token it has just looked up (see TokenStore.recent). */
export const TOKEN_CACHE_MS = 1000;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export class TokenStore {
  private readonly adminHash: Buffer | null;
  private readonly lastUsedWritten = new Map<string, number>();
  /**
   * Tokens seen valid in the last TOKEN_CACHE_MS, by hash: one Redis round trip (which, with
   * appendfsync always, waits for the next fsync) less on most requests. The price: a token
   * revoked in another process still works there for up to TOKEN_CACHE_MS.
   */
  private readonly recent = new Map<string, { p: Principal; until: number }>();

  constructor(
    private readonly redis: RedisClient,
    private readonly ns: string,
    adminToken: string | undefined,
  ) {
    this.adminHash = adminToken ? createHash('sha256').update(adminToken).digest() : null;
  }

  private k(...p: string[]) {
    return `{${this.ns}}:${p.join(':')}`;
  }

  async authenticate(token: string): Promise<Principal | null> {
    if (!token || token.length > 512) return null;
    const h = createHash('sha256').update(token).digest();
    if (this.adminHash && timingSafeEqual(h, this.adminHash)) return { id: 'admin', name: 'GATEWAY_ADMIN_TOKEN', role: 'admin' };
    const hex = h.toString('hex');
    const now = Date.now();
    const hit = this.recent.get(hex);
    if (hit && hit.until > now) {
      this.touch(hit.p.id);
      return hit.p;
    }
    const rec = await this.redis.get(this.k('token', hex));
    if (!rec) {
      this.recent.delete(hex);
      return null;
    }
    const p = JSON.parse(rec) as TokenRecord;
    this.touch(p.id);
    const principal: Principal = { id: p.id, name: p.name, role: p.role };
    if (this.recent.size > 10_000) this.recent.clear(); // bounded: random tokens never get in, but be safe
    this.recent.set(hex, { p: principal, until: now + TOKEN_CACHE_MS });
    return principal;
  }

  /** Last use is written at most once a minute per token and process: not a write per request. */
  private touch(id: string) {
    const now = Date.now();
    if ((this.lastUsedWritten.get(id) ?? 0) > now - 60_000) return;
    this.lastUsedWritten.set(id, now);
    this.redis.hset(this.k('tokens', 'last-used'), id, new Date(now).toISOString()).catch(() => undefined);
  }

  async create(name: string, role: Role, createdBy: string): Promise<TokenRecord & { token: string }> {
    const token = `gwt_${randomBytes(32).toString('base64url')}`;
    const rec: TokenRecord = { id: randomUUID(), name, role, createdAt: new Date().toISOString(), createdBy };
    const hash = sha256(token);
    await this.redis.multi().set(this.k('token', hash), JSON.stringify(rec)).hset(this.k('tokens'), rec.id, JSON.stringify({ ...rec, hash })).exec();
    return { ...rec, token };
  }

  async list(): Promise<(TokenRecord & { lastUsedAt: string | null })[]> {
    const [all, used] = await Promise.all([this.redis.hgetall(this.k('tokens')), this.redis.hgetall(this.k('tokens', 'last-used'))]);
    return Object.values(all)
      .map((s) => {
        const { hash: _hash, ...rec } = JSON.parse(s) as TokenRecord & { hash: string };
        return { ...rec, lastUsedAt: used[rec.id] ?? null };
      })
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** The principal of a token by its id (a revoked token is gone, so its sessions end with it). */
  async byId(id: string): Promise<Principal | null> {
    if (id === 'admin') return this.adminHash ? { id: 'admin', name: 'GATEWAY_ADMIN_TOKEN', role: 'admin' } : null;
    const s = await this.redis.hget(this.k('tokens'), id);
    if (!s) return null;
    const rec = JSON.parse(s) as TokenRecord;
    return { id: rec.id, name: rec.name, role: rec.role };
  }

  async revoke(id: string): Promise<TokenRecord | null> {
    const s = await this.redis.hget(this.k('tokens'), id);
    if (!s) return null;
    const { hash, ...rec } = JSON.parse(s) as TokenRecord & { hash: string };
    this.recent.delete(hash);
    await this.redis.multi().del(this.k('token', hash)).hdel(this.k('tokens'), id).hdel(this.k('tokens', 'last-used'), id).exec();
    return rec;
  }
}

/** An audit trail entry: who, what, when, before and after. Kept in a capped Redis stream. */
export async function audit(redis: RedisClient, ns: string, who: Principal, action: string, target: string, before: unknown, after: unknown): Promise<void> {
  await redis.xadd(
    `{${ns}}:audit`,
    'MAXLEN',
    '~',
    '1000000',
    '*',
    'at',
    new Date().toISOString(),
    'who',
    `${who.id} (${who.name}, ${who.role})`,
    'action',
    action,
    'target',
    target,
    'before',
    JSON.stringify(before ?? null),
    'after',
    JSON.stringify(after ?? null),
  );
}
