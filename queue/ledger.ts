/**
 * The case ledger: the durable record of every accepted case, its routes and the events owed to the
 * platform. Every ledger key carries the hash tag `{ns}`, so the scripts below update a case, its
 * indexes and its outboxes atomically, on a single Redis and on a Cluster alike (the BullMQ queues
 * carry their own tags and spread over the Cluster). Redis runs with AOF `appendfsync always`, so a
 * write that returned is on disk.
 *
 * Mutations are optimistic: read the document and its version, compute the new one in TypeScript,
 * and write it with a compare-and-set script that refuses if the version moved meanwhile.
 */
import { randomUUID } from 'node:crypto';
import type { MaterialRef } from '../model/case.js';
import type { RedisClient } from './redis-client.js';
import {
  FINAL_ROUTE_STATUSES,
  type CaseStatus,
  type CaseView,
  type DepartmentId,
  type RouteStatus,
  type RouteUpdatedEvent,
  type RouteView,
  type UnifiedCase,
} from '../model/case.js';

export interface RouteState extends RouteView {
  /** The idempotency key the department sees for this route (request_id, serialNo, SEQ …). */
  key: string;
  businessType: string;
  /** The department's time of the last event applied (ms); orders later events. */
  lastEventAt: number | null;
  departmentStatus: string | null;
  submittedAt: string | null;
}

export interface CaseDoc {
  caseNo: string;
  itemCode: string;
  mappingVersion: number;
  acceptedAt: string;
  status: CaseStatus;
  seq: number;
  routes: RouteState[];
}

export interface NewRoute {
  department: DepartmentId;
  key: string;
  businessType: string;
  payload: Record<string, unknown>;
}

export type CreateResult =
  | { created: true; doc: CaseDoc }
  | { created: false; doc: CaseDoc; sameBody: boolean };

export interface ListFilter {
  status?: string;
  department?: DepartmentId;
  since?: string;
  limit: number;
  cursor?: string;
}

const CREATE = `
-- KEYS: 1 case, 2 idx:cases, 3 idx:active, 4 pending:submit, 5.. idx:dept:<d> then route-key:<k> (pairs)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'bodyHash'), redis.call('HGET', KEYS[1], 'doc')}
end
-- ARGV: 1 input, 2 bodyHash, 3 doc, 4 listMember, 5 now, 6 nRoutes, then per route: member, routeKeyValue, payloadField, payload
redis.call('HSET', KEYS[1], 'input', ARGV[1], 'bodyHash', ARGV[2], 'doc', ARGV[3], 'ver', 1, 'seq', 0, 'delivered', 0)
redis.call('ZADD', KEYS[2], 0, ARGV[4])
redis.call('ZADD', KEYS[3], 0, ARGV[4])
local n = tonumber(ARGV[6])
for i = 0, n - 1 do
  local a = 7 + i * 4
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[a])
  redis.call('HSET', KEYS[1], ARGV[a + 2], ARGV[a + 3])
  redis.call('ZADD', KEYS[5 + i * 2], 0, ARGV[4])
  redis.call('SET', KEYS[6 + i * 2], ARGV[a + 1])
end
return {1}
`;

const CLAIM = `
-- KEYS: 1 pending:submit; ARGV: 1 now, 2 limit, 3 lease end
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, v in ipairs(m) do redis.call('ZADD', KEYS[1], 'XX', ARGV[3], v) end
return m
`;

const CAS = `
-- KEYS: 1 case, 2 events, 3 pending:notify, 4 idx:active, then keys to SET
-- ARGV: 1 expected ver, 2 doc, 3 seq, 4 nEvents, events..., then 'done'|'open', listMember, now, then values for SET keys
if redis.call('HGET', KEYS[1], 'ver') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'seq', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'ver', 1)
local n = tonumber(ARGV[4])
for i = 1, n do redis.call('RPUSH', KEYS[2], ARGV[4 + i]) end
local a = 5 + n
if n > 0 then redis.call('ZADD', KEYS[3], 'NX', ARGV[a + 2], ARGV[a + 3]) end
if ARGV[a] == 'done' then redis.call('ZREM', KEYS[4], ARGV[a + 1]) end
for i = 5, #KEYS do redis.call('SET', KEYS[i], ARGV[a + 4 + (i - 5)]) end
return 1
`;

const DELIVERED = `
-- KEYS: 1 case, 2 pending:notify; ARGV: 1 seq, 2 caseNo
local cur = tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0')
local s = tonumber(ARGV[1])
if s > cur then redis.call('HSET', KEYS[1], 'delivered', s); cur = s end
if cur >= tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') then redis.call('ZREM', KEYS[2], ARGV[2]) end
return cur
`;

export class ConcurrentUpdateError extends Error {}

/** Sortable list member: acceptedAt (UTC, fixed width) then caseNo, so BYLEX orders by time. */
function listMember(acceptedAt: string, caseNo: string): string {
  return `${new Date(acceptedAt).toISOString()}|${caseNo}`;
}

export function caseView(doc: CaseDoc): CaseView {
  return {
    caseNo: doc.caseNo,
    itemCode: doc.itemCode,
    mappingVersion: doc.mappingVersion,
    acceptedAt: doc.acceptedAt,
    status: doc.status,
    routes: doc.routes.map((r) => ({
      department: r.department,
      status: r.status,
      receiptNo: r.receiptNo,
      attempts: r.attempts,
      lastError: r.lastError,
      updatedAt: r.updatedAt,
      opinion: r.opinion,
      materials: r.materials,
      licence: r.licence,
    })),
  };
}

/** What changed in a route that the platform must hear about. */
function routeChanged(a: RouteState, b: RouteState): boolean {
  return a.status !== b.status || a.receiptNo !== b.receiptNo || a.opinion !== b.opinion;
}

export class Ledger {
  constructor(
    private readonly redis: RedisClient,
    readonly ns: string,
  ) {
    redis.defineCommand('gwCreate', { lua: CREATE });
    redis.defineCommand('gwCas', { lua: CAS });
    redis.defineCommand('gwDelivered', { lua: DELIVERED, numberOfKeys: 2 });
  }

  private k(...parts: string[]): string {
    return `{${this.ns}}:${parts.join(':')}`;
  }
  caseKey(caseNo: string) {
    return this.k('case', caseNo);
  }
  private eventsKey(caseNo: string) {
    return this.k('events', caseNo);
  }
  get pendingSubmitKey() {
    return this.k('pending', 'submit');
  }
  get pendingNotifyKey() {
    return this.k('pending', 'notify');
  }
  private routeKeyKey(key: string) {
    return this.k('route-key', key);
  }
  private receiptKey(dept: string, receiptNo: string) {
    return this.k('receipt', dept, receiptNo);
  }

  /** Records a new case and its routes, or tells what was already recorded under this caseNo. */
  async create(c: UnifiedCase, bodyHash: string, mappingVersion: number, routes: NewRoute[], now = new Date()): Promise<CreateResult> {
    const acceptedAt = now.toISOString();
    const doc: CaseDoc = {
      caseNo: c.caseNo,
      itemCode: c.itemCode,
      mappingVersion,
      acceptedAt,
      status: 'IN_PROGRESS',
      seq: 0,
      routes: routes.map((r) => ({
        department: r.department,
        status: 'QUEUED',
        receiptNo: null,
        attempts: 0,
        lastError: null,
        updatedAt: acceptedAt,
        opinion: null,
        materials: (c.materials ?? []).map((m) => ({ id: m.id, status: 'PENDING' as const })),
        licence: null,
        key: r.key,
        businessType: r.businessType,
        lastEventAt: null,
        departmentStatus: null,
        submittedAt: null,
      })),
    };
    const member = listMember(acceptedAt, c.caseNo);
    const keys = [this.caseKey(c.caseNo), this.k('idx', 'cases'), this.k('idx', 'active'), this.pendingSubmitKey];
    const args: (string | number)[] = [JSON.stringify(c), bodyHash, JSON.stringify(doc), member, now.getTime(), routes.length];
    for (const r of routes) {
      keys.push(this.k('idx', 'dept', r.department), this.routeKeyKey(r.key));
      args.push(`${c.caseNo}|${r.department}`, `${c.caseNo}|${r.department}`, `payload:${r.department}`, JSON.stringify({ businessType: r.businessType, payload: r.payload }));
    }
    const res = (await (this.redis as unknown as { gwCreate(n: number, ...a: (string | number)[]): Promise<[number, string?, string?]> }).gwCreate(
      keys.length,
      ...keys,
      ...args,
    )) as [number, string | undefined, string | undefined];
    if (res[0] === 1) return { created: true, doc };
    return { created: false, doc: JSON.parse(res[2]!) as CaseDoc, sameBody: res[1] === bodyHash };
  }

  async get(caseNo: string): Promise<CaseDoc | null> {
    const doc = await this.redis.hget(this.caseKey(caseNo), 'doc');
    return doc ? (JSON.parse(doc) as CaseDoc) : null;
  }

  async input(caseNo: string): Promise<UnifiedCase | null> {
    const s = await this.redis.hget(this.caseKey(caseNo), 'input');
    return s ? (JSON.parse(s) as UnifiedCase) : null;
  }

  /** A material's reference (url, sha256, size …): the case's own, or one given later as a supplement. */
  async materialRef(caseNo: string, id: string): Promise<MaterialRef | null> {
    const [input, extra] = await this.redis.hmget(this.caseKey(caseNo), 'input', `matref:${id}`);
    if (extra) return JSON.parse(extra) as MaterialRef;
    const c = input ? (JSON.parse(input) as UnifiedCase) : null;
    return c?.materials?.find((m) => m.id === id) ?? null;
  }

  async storeMaterialRefs(caseNo: string, refs: MaterialRef[]): Promise<void> {
    if (!refs.length) return;
    await this.redis.hset(this.caseKey(caseNo), ...refs.flatMap((m) => [`matref:${m.id}`, JSON.stringify(m)]));
  }

  async routePayload(caseNo: string, dept: DepartmentId): Promise<{ businessType: string; payload: Record<string, unknown> } | null> {
    const s = await this.redis.hget(this.caseKey(caseNo), `payload:${dept}`);
    return s ? JSON.parse(s) : null;
  }

  /**
   * Changes a case through `fn`, which gets a copy of the document and returns it changed, or null
   * to leave it alone. Every route change the platform must hear about becomes a `route.updated`
   * event with the next seq, written in the same step. Returns the document written (or unchanged).
   */
  async mutate(
    caseNo: string,
    fn: (doc: CaseDoc) => CaseDoc | null,
    now: () => Date = () => new Date(),
  ): Promise<{ doc: CaseDoc; changed: boolean; events: RouteUpdatedEvent[] } | null> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const [docJson, ver] = await this.redis.hmget(this.caseKey(caseNo), 'doc', 'ver');
      if (!docJson || !ver) return null;
      const before = JSON.parse(docJson) as CaseDoc;
      const after = fn(JSON.parse(docJson) as CaseDoc);
      if (!after) return { doc: before, changed: false, events: [] };
      const at = now();
      const events: RouteUpdatedEvent[] = [];
      for (const r of after.routes) {
        const old = before.routes.find((x) => x.department === r.department);
        if (old && !routeChanged(old, r)) continue;
        r.updatedAt = at.toISOString();
        after.seq += 1;
        events.push({
          event: 'route.updated',
          eventId: randomUUID(),
          seq: after.seq,
          caseNo,
          department: r.department,
          status: r.status,
          receiptNo: r.receiptNo,
          opinion: r.opinion,
          licence: r.licence,
          lastError: r.lastError,
          occurredAt: at.toISOString(),
        });
      }
      after.status = after.routes.every((r) => FINAL_ROUTE_STATUSES.has(r.status)) ? 'DONE' : 'IN_PROGRESS';
      const setKeys: string[] = [];
      const setVals: string[] = [];
      for (const r of after.routes) {
        if (r.receiptNo && r.receiptNo !== before.routes.find((x) => x.department === r.department)?.receiptNo) {
          setKeys.push(this.receiptKey(r.department, r.receiptNo));
          setVals.push(`${caseNo}|${r.department}`);
        }
      }
      const keys = [this.caseKey(caseNo), this.eventsKey(caseNo), this.pendingNotifyKey, this.k('idx', 'active'), ...setKeys];
      const args = [
        ver,
        JSON.stringify(after),
        String(after.seq),
        String(events.length),
        ...events.map((e) => JSON.stringify(e)),
        after.status === 'DONE' ? 'done' : 'open',
        listMember(after.acceptedAt, caseNo),
        String(at.getTime()),
        caseNo,
        ...setVals,
      ];
      const ok = await (this.redis as unknown as { gwCas(n: number, ...a: string[]): Promise<number> }).gwCas(keys.length, ...keys, ...args);
      if (ok === 1) return { doc: after, changed: true, events };
    }
    throw new ConcurrentUpdateError(`case ${caseNo} kept changing under 50 attempts to update it`);
  }

  async findByRouteKey(key: string): Promise<{ caseNo: string; department: DepartmentId } | null> {
    const v = await this.redis.get(this.routeKeyKey(key));
    return v ? splitRef(v) : null;
  }

  async findByReceipt(dept: DepartmentId, receiptNo: string): Promise<{ caseNo: string; department: DepartmentId } | null> {
    const v = await this.redis.get(this.receiptKey(dept, receiptNo));
    return v ? splitRef(v) : null;
  }

  /**
   * A short per-case lock (one owner, expiring): events of one case are sent by one job at a time,
   * so two notify jobs recovering together cannot interleave their sends.
   */
  async lockCase(purpose: string, caseNo: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.k('lock', purpose, caseNo), owner, 'PX', ttlMs, 'NX')) === 'OK';
  }

  /** Extends the lock only while `owner` still holds it. */
  async renewCaseLock(purpose: string, caseNo: string, owner: string, ttlMs: number): Promise<boolean> {
    const r = await this.redis.eval(
      "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
      1,
      this.k('lock', purpose, caseNo),
      owner,
      ttlMs,
    );
    return r === 1;
  }

  async unlockCase(purpose: string, caseNo: string, owner: string): Promise<void> {
    await this.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end", 1, this.k('lock', purpose, caseNo), owner);
  }

  /** Events with seq in (after, upTo], in order. */
  async events(caseNo: string, after: number, upTo: number): Promise<string[]> {
    if (upTo <= after) return [];
    return this.redis.lrange(this.eventsKey(caseNo), after, upTo - 1);
  }

  async deliveryState(caseNo: string): Promise<{ seq: number; delivered: number } | null> {
    const [seq, delivered] = await this.redis.hmget(this.caseKey(caseNo), 'seq', 'delivered');
    if (seq === null) return null;
    return { seq: Number(seq), delivered: Number(delivered ?? 0) };
  }

  async markDelivered(caseNo: string, seq: number): Promise<number> {
    return (this.redis as unknown as { gwDelivered(...a: (string | number)[]): Promise<number> }).gwDelivered(
      this.caseKey(caseNo),
      this.pendingNotifyKey,
      seq,
      caseNo,
    );
  }

  /**
   * The outbox: up to `limit` routes recorded and not yet handed to their queue, claimed for
   * `leaseMs` (their score moves past now, so other dispatchers skip them). A claimer that dies
   * leaves them to be claimed again when the lease ends.
   */
  async claimPendingSubmits(limit: number, leaseMs: number): Promise<{ caseNo: string; department: DepartmentId }[]> {
    const now = Date.now();
    const members = (await this.redis.eval(CLAIM, 1, this.pendingSubmitKey, now, limit, now + leaseMs)) as string[];
    return members.map(splitRef);
  }

  /** How many routes wait in the outbox, and for how long the oldest unclaimed one has waited. */
  async outboxStats(): Promise<{ routes: number; oldestWaitingSeconds: number }> {
    const [routes, oldest] = await Promise.all([this.redis.zcard(this.pendingSubmitKey), this.redis.call('ZRANGE', this.pendingSubmitKey, 0, 0, 'WITHSCORES') as Promise<string[]>]);
    const since = oldest[1] ? Number(oldest[1]) : Date.now();
    return { routes, oldestWaitingSeconds: Math.max(0, (Date.now() - since) / 1000) };
  }

  /** Puts routes (back) in the outbox, unless they are there already. */
  async markPendingSubmit(refs: { caseNo: string; department: DepartmentId }[]): Promise<void> {
    if (refs.length) await this.redis.zadd(this.pendingSubmitKey, 'NX', ...refs.flatMap((r) => [Date.now(), `${r.caseNo}|${r.department}`]));
  }

  async clearPendingSubmit(refs: { caseNo: string; department: DepartmentId }[]): Promise<void> {
    if (refs.length) await this.redis.zrem(this.pendingSubmitKey, ...refs.map((r) => `${r.caseNo}|${r.department}`));
  }

  /** Cases with events not yet delivered, last looked at before `olderThanMs` ago; their score is renewed. */
  async pendingNotifies(olderThanMs: number, limit = 500): Promise<string[]> {
    const cutoff = Date.now() - olderThanMs;
    const members = await this.redis.zrangebyscore(this.pendingNotifyKey, '-inf', cutoff, 'LIMIT', 0, limit);
    if (members.length) await this.redis.zadd(this.pendingNotifyKey, 'XX', ...members.flatMap((m) => [Date.now(), m]));
    return members;
  }

  /** Newest first; `cursor` is opaque to callers. Scans a bounded number of entries per call. */
  async list(f: ListFilter): Promise<{ items: CaseDoc[]; nextCursor: string | null }> {
    const index = f.department ? this.k('idx', 'dept', f.department) : this.k('idx', 'cases');
    let max = f.cursor ? `(${Buffer.from(f.cursor, 'base64url').toString()}` : '+';
    const min = f.since ? `[${new Date(f.since).toISOString()}` : '-';
    const items: CaseDoc[] = [];
    let scanned = 0;
    const batch = Math.max(f.limit * 2, 50);
    while (items.length < f.limit && scanned < 5000) {
      const page = await this.redis.zrevrangebylex(index, max, min, 'LIMIT', 0, batch);
      if (!page.length) return { items, nextCursor: null };
      scanned += page.length;
      const docs = await this.redis.pipeline(page.map((m) => ['hget', this.caseKey(m.slice(m.indexOf('|') + 1)), 'doc'])).exec();
      for (let i = 0; i < page.length; i++) {
        const s = docs?.[i]?.[1] as string | null;
        max = `(${page[i]}`;
        if (!s) continue;
        const doc = JSON.parse(s) as CaseDoc;
        if (f.status && !matchesStatus(doc, f.status, f.department)) continue;
        items.push(doc);
        if (items.length === f.limit) {
          return { items, nextCursor: Buffer.from(page[i]!).toString('base64url') };
        }
      }
      if (page.length < batch) return { items, nextCursor: null };
    }
    return { items, nextCursor: Buffer.from(max.slice(1)).toString('base64url') };
  }
}

function matchesStatus(doc: CaseDoc, status: string, dept?: DepartmentId): boolean {
  if (status === 'IN_PROGRESS' || status === 'DONE') return doc.status === status;
  return doc.routes.some((r) => r.status === (status as RouteStatus) && (!dept || r.department === dept));
}

function splitRef(v: string): { caseNo: string; department: DepartmentId } {
  const i = v.lastIndexOf('|');
  return { caseNo: v.slice(0, i), department: v.slice(i + 1) as DepartmentId };
}

export function isListCursor(s: string): boolean {
  return /^[A-Za-z0-9_-]{1,200}$/.test(s) && /^\d{4}-\d{2}-\d{2}T[\d:.]+Z\|[A-Za-z0-9_-]{1,64}$/.test(Buffer.from(s, 'base64url').toString());
}
