/**
 * The versioned mapping store. Mappings live in Redis (one hash per item: `current` and every
 * version's document), so every gateway process sees the same ones; each process keeps them
 * compiled in memory and reloads when the store's revision counter moves. Seed files are installed
 * for items the store does not hold yet, as version 1; after that the store is the truth.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
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

export class MappingStore {
  private compiled = new Map<string, CompiledMapping>();
  private rev: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private loadedOnce = false;

  constructor(
    private readonly redis: Redis,
    private readonly ns: string,
    private readonly log: Logger,
  ) {
    redis.defineCommand('gwInstallMapping', { lua: INSTALL, numberOfKeys: 3 });
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
      const meta = JSON.stringify({ at: new Date().toISOString(), by: `seed:${file}` });
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
}
