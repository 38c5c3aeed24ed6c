/**
 * The versioned mapping store. Mappings live in Redis (one hash per item: `current` and every
 * version's document), so every gateway process sees the same ones; each process keeps them
 * compiled in memory and reloads when the store's revision counter moves. Seed files are installed
 * for items the store does not hold yet, as version 1; after that the store is the truth.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../queue/redis-client.js';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import type { ErrorDetail } from '../model/errors.js';
import { compileMapping, type CompiledMapping } from './language.js';

export class SeedError extends Error {
  constructor(
    readonly file: string,
    readonly faults: ErrorDetail[],
  ) {
    super(`seed mapping ${file} is invalid:\n${faults.map((f) => `  ${f.path}: ${f.message}`).join('\n')}`);
  }
}

const INSTALL = `
-- KEYS: 1 item hash, 2 items set, 3 rev; ARGV: 1 itemCode, 2 doc, 3 audit json
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'current', 1, 'latest', 1, 'v:1', ARGV[2], 'meta:1', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[3])
return 1
`;

const PUT = `
-- KEYS: 1 item hash, 2 items set, 3 rev; ARGV: 1 itemCode, 2 doc, 3 meta json, 4 expected current ('' = any)
local cur = redis.call('HGET', KEYS[1], 'current') or '0'
if ARGV[4] ~= '' and ARGV[4] ~= cur then return {-1, cur} end
local n = redis.call('HINCRBY', KEYS[1], 'latest', 1)
redis.call('HSET', KEYS[1], 'current', n, 'v:' .. n, ARGV[2], 'meta:' .. n, ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[3])
return {n, cur}
`;

const RETIRE = `
-- KEYS: 1 item hash, 2 rev
local cur = redis.call('HGET', KEYS[1], 'current')
if not cur or cur == '0' then return 0 end
redis.call('HSET', KEYS[1], 'current', 0)
redis.call('INCR', KEYS[2])
return tonumber(cur)
`;

export interface VersionMeta {
  version: number;
  at: string;
  by: string;
  action: 'seed' | 'put' | 'rollback';
  from?: number;
}

export class MappingStore {
  private readonly versions = new Map<string, CompiledMapping>();

  private compiled = new Map<string, CompiledMapping>();
  private rev: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private loadedOnce = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly ns: string,
    private readonly log: Logger,
  ) {
    redis.defineCommand('gwInstallMapping', { lua: INSTALL, numberOfKeys: 3 });
    redis.defineCommand('gwPutMapping', { lua: PUT, numberOfKeys: 3 });
    redis.defineCommand('gwRetireMapping', { lua: RETIRE, numberOfKeys: 2 });
  }

  private k(...p: string[]) {
    return `{${this.ns}}:${p.join(':')}`;
  }

  /** Reads and compiles every seed file; refuses start-up on any invalid one. */
  static readSeeds(dir: string): { file: string; doc: unknown }[] {
    const files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
    return files.map((f) => {
      const text = readFileSync(join(dir, f), 'utf8');
      const doc: unknown = f.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
      const c = compileMapping(doc, 1);
      if (!c.ok) throw new SeedError(f, c.faults);
      return { file: f, doc };
    });
  }

  async installSeeds(dir: string): Promise<number> {
    let installed = 0;
    for (const { file, doc } of MappingStore.readSeeds(dir)) {
      const itemCode = (doc as { itemCode: string }).itemCode;
      const meta = JSON.stringify({ version: 1, at: new Date().toISOString(), by: `seed:${file}`, action: 'seed' } satisfies VersionMeta);
      const r = await (this.redis as unknown as { gwInstallMapping(...a: string[]): Promise<number> }).gwInstallMapping(
        this.k('mapping', itemCode),
        this.k('mappings'),
        this.k('mappings', 'rev'),
        itemCode,
        JSON.stringify(doc),
        meta,
      );
      if (r === 1) installed++;
    }
    if (installed) this.log.info({ installed }, 'seed mappings installed');
    return installed;
  }

  /** Loads every current mapping if the store changed since the last load. */
  async refresh(): Promise<boolean> {
    const rev = await this.redis.get(this.k('mappings', 'rev'));
    if (rev === this.rev && this.loadedOnce) return false;
    const items = await this.redis.smembers(this.k('mappings'));
    const next = new Map<string, CompiledMapping>();
    for (const item of items) {
      const cur = await this.redis.hget(this.k('mapping', item), 'current');
      if (!cur || cur === '0') continue; // retired
      const prev = this.compiled.get(item);
      if (prev && String(prev.version) === cur) {
        next.set(item, prev);
        continue;
      }
      const doc = await this.redis.hget(this.k('mapping', item), `v:${cur}`);
      const c = doc ? compileMapping(JSON.parse(doc), Number(cur)) : null;
      if (c?.ok) next.set(item, c.mapping);
      else this.log.error({ itemCode: item, version: cur }, 'stored mapping does not compile; item unavailable');
    }
    this.compiled = next;
    this.rev = rev;
    this.loadedOnce = true;
    return true;
  }

  startReloading(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.refresh().catch((e) => this.log.warn({ err: (e as Error).message }, 'mapping reload failed; keeping the loaded ones'));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  ready(): boolean {
    return this.loadedOnce;
  }

  current(itemCode: string): CompiledMapping | undefined {
    return this.compiled.get(itemCode);
  }

  list(): CompiledMapping[] {
    return [...this.compiled.values()];
  }

  /** Every item the store knows, retired ones included: item code, current version (0 = retired), latest. */
  async items(): Promise<{ itemCode: string; current: number; latest: number }[]> {
    const items = (await this.redis.smembers(this.k('mappings'))).sort();
    const out = [];
    for (const itemCode of items) {
      const [cur, latest] = await this.redis.hmget(this.k('mapping', itemCode), 'current', 'latest');
      out.push({ itemCode, current: Number(cur ?? 0), latest: Number(latest ?? 0) });
    }
    return out;
  }

  /** One stored version's document and meta; null when there is no such version. */
  async version(itemCode: string, n: number): Promise<{ document: unknown; meta: VersionMeta } | null> {
    const [doc, meta] = await this.redis.hmget(this.k('mapping', itemCode), `v:${n}`, `meta:${n}`);
    if (!doc) return null;
    return { document: JSON.parse(doc), meta: { version: n, ...(meta ? (JSON.parse(meta) as Omit<VersionMeta, 'version'>) : { at: '', by: '', action: 'put' }) } };
  }

  async head(itemCode: string): Promise<{ current: number; latest: number } | null> {
    const [cur, latest] = await this.redis.hmget(this.k('mapping', itemCode), 'current', 'latest');
    if (latest === null) return null;
    return { current: Number(cur ?? 0), latest: Number(latest) };
  }

  async history(itemCode: string): Promise<VersionMeta[]> {
    const head = await this.head(itemCode);
    if (!head) return [];
    const keys = Array.from({ length: head.latest }, (_, i) => `meta:${i + 1}`);
    const metas = await this.redis.hmget(this.k('mapping', itemCode), ...keys);
    return metas.map((m, i) => ({ version: i + 1, ...(m ? (JSON.parse(m) as Omit<VersionMeta, 'version'>) : { at: '', by: '', action: 'put' as const }) }));
  }

  /**
   * Stores a new version and makes it current. The document must already have compiled. With
   * `expectedCurrent`, refuses (returns null) if someone else changed the item meanwhile.
   */
  async put(itemCode: string, document: unknown, meta: Omit<VersionMeta, 'version'>, expectedCurrent?: number): Promise<{ version: number; previous: number } | null> {
    const [n, prev] = await (this.redis as unknown as { gwPutMapping(...a: string[]): Promise<[number, string]> }).gwPutMapping(
      this.k('mapping', itemCode),
      this.k('mappings'),
      this.k('mappings', 'rev'),
      itemCode,
      JSON.stringify(document),
      JSON.stringify(meta),
      expectedCurrent === undefined ? '' : String(expectedCurrent),
    );
    if (n === -1) return null;
    await this.refresh();
    return { version: n, previous: Number(prev) };
  }

  /** Retires an item: new cases get MAPPING_NOT_FOUND; cases in flight keep their version. Returns the retired version, 0 if none. */
  async retire(itemCode: string): Promise<number> {
    const r = await (this.redis as unknown as { gwRetireMapping(...a: string[]): Promise<number> }).gwRetireMapping(this.k('mapping', itemCode), this.k('mappings', 'rev'));
    await this.refresh();
    return r;
  }

  /** A compiled version, current or not (cases keep the version they were accepted with). */
  async compiledVersion(itemCode: string, n: number): Promise<CompiledMapping | null> {
    const cur = this.compiled.get(itemCode);
    if (cur?.version === n) return cur;
    const key = `${itemCode}@${n}`;
    const hit = this.versions.get(key);
    if (hit) return hit;
    const v = await this.version(itemCode, n);
    const c = v ? compileMapping(v.document, n) : null;
    if (!c?.ok) return null;
    // Versions never change once written, so the cache never goes stale; it is only bounded.
    if (this.versions.size > 500) this.versions.delete(this.versions.keys().next().value!);
    this.versions.set(key, c.mapping);
    return c.mapping;
  }
}
