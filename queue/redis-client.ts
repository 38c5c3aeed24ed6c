/**
 * Redis connections for one gateway process, on a single Redis or on a Redis Cluster.
 * Every key the gateway writes carries a hash tag (the ledger and stores share `{ns}`, each queue
 * its own `{ns-queue}`), so each Lua script, MULTI and pipeline stays in one slot on a Cluster.
 */
import type { ConnectionOptions } from 'bullmq';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** Either client: both carry the same command API. */
export type RedisClient = Redis | Cluster;

export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: Array<{ host: string; port: number }>; redisOptions: RedisOptions; tls: boolean }
  /** A primary and its replicas watched by Redis Sentinel: ioredis asks the sentinels where the primary is, again after a failover. */
  | { kind: 'sentinel'; sentinels: Array<{ host: string; port: number }>; name: string; redisOptions: RedisOptions };

export function redisOptionsFromUrl(url: string): RedisOptions {
  const u = new URL(url);
  const opts: RedisOptions = { host: u.hostname || '127.0.0.1', port: u.port ? Number(u.port) : 6379 };
  if (u.username) opts.username = decodeURIComponent(u.username);
  if (u.password) opts.password = decodeURIComponent(u.password);
  const db = u.pathname.replace(/^\//, '');
  if (db) opts.db = Number(db);
  if (u.protocol === 'rediss:') opts.tls = {};
  return opts;
}

/** `host:port` → a Cluster seed node (IPv6 in brackets). */
export function parseClusterNode(s: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(s.trim());
  if (!m) throw new Error(`cluster node "${s}" is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

export function clusterTarget(nodes: string[], auth: { username?: string; password?: string; tls?: boolean }): RedisTarget {
  const redisOptions: RedisOptions = {};
  if (auth.username) redisOptions.username = auth.username;
  if (auth.password) redisOptions.password = auth.password;
  if (auth.tls) redisOptions.tls = {};
  return { kind: 'cluster', nodes: nodes.map(parseClusterNode), redisOptions, tls: !!auth.tls };
}

export function sentinelTarget(nodes: string[], name: string, auth: { username?: string; password?: string; sentinelPassword?: string }): RedisTarget {
  const redisOptions: RedisOptions = {};
  if (auth.username) redisOptions.username = auth.username;
  if (auth.password) redisOptions.password = auth.password;
  if (auth.sentinelPassword) redisOptions.sentinelPassword = auth.sentinelPassword;
  return { kind: 'sentinel', sentinels: nodes.map(parseClusterNode), name, redisOptions };
}

export function describeTarget(t: RedisTarget): string {
  if (t.kind === 'single') {
    const u = new URL(t.url);
    return `${u.protocol}//${u.host}`; // never the password
  }
  if (t.kind === 'sentinel') return `sentinel ${t.name}@${t.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  return `cluster ${t.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
}

/** After a failover the old primary answers READONLY: reconnect, so the next command finds the new one. */
const reconnectOnReadonly = (err: Error) => /^READONLY/.test(err.message);

/**
 * The command connection (ledger, stores, queue producers): no offline queue and one retry, so a
 * Redis outage fails a request at once (the API answers 503) instead of hanging it.
 */
// Over TLS, connect by the host name given (ioredis would otherwise resolve it to an IP first), so
// the node's certificate is checked against that name: ioredis's advice for TLS Clusters.
const tlsLookup = { dnsLookup: (address: string, cb: (err: Error | null, address: string) => void) => cb(null, address) };

export function createCommandClient(t: RedisTarget): RedisClient {
  const fast: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, reconnectOnError: reconnectOnReadonly };
  if (t.kind === 'single') return new Redis(t.url, fast);
  // failoverDetector: the sentinels' +switch-master moves the connection at once, even while the
  // old primary still answers.
  if (t.kind === 'sentinel') return new Redis({ sentinels: t.sentinels, name: t.name, ...t.redisOptions, ...fast, failoverDetector: true });
  return new Cluster(t.nodes, {
    lazyConnect: true,
    // Only consulted while the whole Cluster is unreachable; MOVED/ASK redirects are followed anyway.
    enableOfflineQueue: false,
    redisOptions: { ...t.redisOptions, maxRetriesPerRequest: 1 },
    ...(t.tls ? tlsLookup : {}),
  });
}

/**
 * What a BullMQ Worker connects with. Workers block and must wait out outages
 * (maxRetriesPerRequest: null). On a single Redis BullMQ builds the connections itself from
 * options; on a Cluster it takes a Cluster instance, which the caller closes after the worker.
 */
export function workerConnection(t: RedisTarget): { connection: ConnectionOptions; close(): Promise<void> } {
  if (t.kind === 'single') return { connection: { ...redisOptionsFromUrl(t.url), maxRetriesPerRequest: null, reconnectOnError: reconnectOnReadonly } as ConnectionOptions, close: async () => undefined };
  if (t.kind === 'sentinel')
    return {
      connection: { sentinels: t.sentinels, name: t.name, ...t.redisOptions, maxRetriesPerRequest: null, failoverDetector: true, reconnectOnError: reconnectOnReadonly } as ConnectionOptions,
      close: async () => undefined,
    };
  const c = new Cluster(t.nodes, { redisOptions: { ...t.redisOptions, maxRetriesPerRequest: null }, ...(t.tls ? tlsLookup : {}) });
  return {
    connection: c as unknown as ConnectionOptions,
    close: async () => {
      await c.quit().catch(() => c.disconnect());
    },
  };
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Redis (or a Cluster shard) unreachable, restarting or failing over: nobody's mistake, and worth
 * a retry. ioredis says so in several ways: a MaxRetriesPerRequestError for a command that was in
 * flight when the connection dropped, a refusal while reconnecting (no offline queue), a socket
 * code, LOADING while the AOF is read back, CLUSTERDOWN/TRYAGAIN during a failover, READONLY from a
 * primary just demoted, NOREPLICAS from a primary short of the replicas `min-replicas-to-write` asks.
 */
export function isRedisUnavailable(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const err = e as Error & { code?: unknown };
  if (err.name === 'MaxRetriesPerRequestError' || err.name === 'ClusterAllFailedError') return true;
  if (typeof err.code === 'string' && UNREACHABLE_CODES.has(err.code)) return true;
  return /Connection is closed|Stream isn't writeable|enableOfflineQueue|max retries per request|^LOADING|^CLUSTERDOWN|^TRYAGAIN|^READONLY|^MASTERDOWN|^NOREPLICAS|All sentinels are unreachable|Failed to refresh slots cache|None of startup nodes is available|connect ETIMEDOUT|ECONNREFUSED|ECONNRESET/i.test(err.message ?? '');
}
