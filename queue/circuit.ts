/**
 * Per-department circuit breaker, shared by every worker process through Redis. After a run of
 * retryable failures the circuit opens: nothing is sent to that department and no job spends an
 * attempt waiting. After a pause one job probes; success closes the circuit, failure reopens it
 * with a doubled pause, up to a ceiling. A department down for hours therefore fails no case.
 */
import type { RedisClient } from './redis-client.js';
import type { DepartmentId } from '../model/case.js';

export interface CircuitSettings {
  failureThreshold: number;
  openMs: number;
  maxOpenMs: number;
}

export type Gate = { allowed: true; probe: boolean } | { allowed: false; waitMs: number };

export interface CircuitView {
  state: 'closed' | 'open' | 'half-open';
  failures: number;
  openedAt: string | null;
  nextProbeAt: string | null;
}

/** A probe that neither succeeds nor fails in this long (its worker died) lets another probe. */
const PROBE_LEASE_MS = 60_000;

export class Circuits {
  constructor(
    private readonly redis: RedisClient,
    private readonly ns: string,
    private readonly settings: (d: DepartmentId) => CircuitSettings,
    private readonly onChange: (d: DepartmentId, state: CircuitView['state']) => void = () => undefined,
  ) {}

  private key(d: DepartmentId) {
    return `{${this.ns}}:circuit:${d}`;
  }

  async view(d: DepartmentId): Promise<CircuitView> {
    const [state, failures, openedAt, nextProbeAt] = await this.redis.hmget(this.key(d), 'state', 'failures', 'openedAt', 'nextProbeAt');
    const probing = (await this.redis.exists(`${this.key(d)}:probe`)) === 1;
    const s = state === 'open' ? (probing ? 'half-open' : 'open') : 'closed';
    return { state: s, failures: Number(failures ?? 0), openedAt: openedAt ? new Date(Number(openedAt)).toISOString() : null, nextProbeAt: nextProbeAt && s !== 'closed' ? new Date(Number(nextProbeAt)).toISOString() : null };
  }

  async before(d: DepartmentId, now = Date.now()): Promise<Gate> {
    const [state, nextProbeAt] = await this.redis.hmget(this.key(d), 'state', 'nextProbeAt');
    if (state !== 'open') return { allowed: true, probe: false };
    const due = Number(nextProbeAt ?? 0);
    if (now < due) return { allowed: false, waitMs: due - now };
    // One probe at a time across every process.
    const got = await this.redis.set(`${this.key(d)}:probe`, '1', 'PX', PROBE_LEASE_MS, 'NX');
    if (got === 'OK') {
      this.onChange(d, 'half-open');
      return { allowed: true, probe: true };
    }
    return { allowed: false, waitMs: 1000 };
  }

  async success(d: DepartmentId): Promise<void> {
    const [state, failures] = await this.redis.hmget(this.key(d), 'state', 'failures');
    if (state !== 'open' && !Number(failures ?? 0)) return;
    await this.redis.multi().hset(this.key(d), 'state', 'closed', 'failures', 0, 'openMs', 0).hdel(this.key(d), 'nextProbeAt', 'openedAt').del(`${this.key(d)}:probe`).exec();
    if (state === 'open') this.onChange(d, 'closed');
  }

  /** Records a retryable failure; says whether the circuit is (now) open and how long to wait. */
  async failure(d: DepartmentId, probe: boolean, now = Date.now()): Promise<{ open: boolean; waitMs: number }> {
    const s = this.settings(d);
    if (probe) {
      const prev = Number((await this.redis.hget(this.key(d), 'openMs')) ?? s.openMs) || s.openMs;
      const next = Math.min(s.maxOpenMs, prev * 2);
      await this.redis.multi().hset(this.key(d), 'state', 'open', 'openMs', next, 'nextProbeAt', now + next).del(`${this.key(d)}:probe`).exec();
      this.onChange(d, 'open');
      return { open: true, waitMs: next };
    }
    const failures = await this.redis.hincrby(this.key(d), 'failures', 1);
    if (failures < s.failureThreshold) return { open: false, waitMs: 0 };
    const state = await this.redis.hget(this.key(d), 'state');
    if (state !== 'open') {
      await this.redis.hset(this.key(d), 'state', 'open', 'openMs', s.openMs, 'openedAt', now, 'nextProbeAt', now + s.openMs);
      this.onChange(d, 'open');
    }
    const due = Number((await this.redis.hget(this.key(d), 'nextProbeAt')) ?? now + s.openMs);
    return { open: true, waitMs: Math.max(0, due - now) };
  }
}
