/**
 * "Acknowledged" means "on enough replicas" when the installation asks for it
 * (`redis.waitReplicas` > 0): on a replicated Redis a failover promotes a replica, and a write the
 * old primary acknowledged but had not yet passed on is gone with it, AOF or not. Redis WAIT, sent
 * after a request's writes and before its answer, on the connection that made them (WAIT counts only
 * this connection's writes), closes that window.
 *
 * One WAIT serves every request whose writes had finished when it was sent (a group commit), so
 * concurrent requests share one round trip to the replicas instead of queueing one WAIT each behind
 * another on the shared connection. On a Cluster the WAIT goes to the shard of the `{ns}` slot, where
 * the ledger and every store live (queue/redis-client.ts).
 */
import { Cluster } from 'ioredis';
import { GatewayError } from '../model/errors.js';
import type { RedisClient } from './redis-client.js';

export interface ReplicaSettings {
  /** Replicas that must hold a write before it is acknowledged; 0 = the primary's word is enough. */
  replicas: number;
  /** How long to wait for them before answering 503 (the request may be repeated as it was). */
  timeoutMs: number;
}

export class ReplicaBarrier {
  private inFlight: Promise<number> | null = null;
  private next: Promise<number> | null = null;
  private connectionEpoch = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly ns: string,
    readonly settings: ReplicaSettings,
    /** Told of every WAIT round: how long it took and whether enough replicas confirmed (metrics). */
    private readonly onRound: (seconds: number, confirmed: boolean) => void = () => undefined,
  ) {
    // WAIT counts the writes of the connection it is sent on. A write made on a connection that has
    // since been lost (the primary died, a failover) is not covered by a WAIT on the next one, which
    // answers at once: every loss of the connection starts a new epoch, and a wait that spans two
    // epochs confirms nothing.
    const lost = () => void this.connectionEpoch++;
    redis.on('close', lost);
    if (redis instanceof Cluster) {
      redis.on('-node', lost);
      redis.on('node error', lost);
    }
  }

  get enabled(): boolean {
    return this.settings.replicas > 0;
  }

  /** Taken before a request's writes, and given to wait(): the connection they went out on. */
  get epoch(): number {
    return this.connectionEpoch;
  }

  /**
   * Resolves once every write this process finished before the call is on `replicas` replicas;
   * throws SERVICE_UNAVAILABLE (detail NOT_REPLICATED) if they do not confirm in time, or if the
   * connection was lost since `since` (an `epoch` taken before the writes). The writes
   * stay on the primary either way: a repeat of the request finds them (every write is idempotent).
   */
  async wait(since?: number): Promise<void> {
    if (!this.enabled) return;
    const sameConnection = () => since === undefined || since === this.connectionEpoch;
    const acked = sameConnection() ? await this.round() : 0;
    // Checked again after the round: the connection may have been lost while it waited.
    const confirmed = sameConnection() ? acked : 0;
    if (confirmed < this.settings.replicas)
      throw new GatewayError('SERVICE_UNAVAILABLE', `recorded, but ${confirmed} of the ${this.settings.replicas} required replicas confirmed it within ${this.settings.timeoutMs} ms; repeat the request`, [
        { path: '', code: 'NOT_REPLICATED', message: `${confirmed} of ${this.settings.replicas} replicas confirmed` },
      ]);
  }

  /** How many replicas confirmed a WAIT sent after this call. */
  private round(): Promise<number> {
    if (!this.inFlight) {
      const sent = this.send();
      this.inFlight = sent;
      void sent.then(
        () => (this.inFlight = null),
        () => (this.inFlight = null),
      );
      return sent;
    }
    // The WAIT under way may have gone out before this caller's writes: join the next one, sent as
    // soon as this one is answered, for everyone who arrives meanwhile.
    this.next ??= this.inFlight
      .catch(() => 0)
      .then(() => {
        this.next = null;
        return this.round();
      });
    return this.next;
  }

  private async send(): Promise<number> {
    const started = performance.now();
    const epoch = this.connectionEpoch;
    // A WAIT that ioredis re-sent on a new connection after losing the first answers for nothing.
    const acked = (await this.sendWait()) * (epoch === this.connectionEpoch ? 1 : 0);
    this.onRound((performance.now() - started) / 1000, acked >= this.settings.replicas);
    return acked;
  }

  private async sendWait(): Promise<number> {
    const { replicas, timeoutMs } = this.settings;
    if (this.redis instanceof Cluster) {
      // A keyed command first routes the pipeline, WAIT included, to the `{ns}` shard's connection.
      const res = await this.redis.pipeline().exists(`{${this.ns}}:barrier`).call('WAIT', replicas, timeoutMs).exec();
      const [err, n] = res![1]!;
      if (err) throw err;
      return Number(n);
    }
    return Number(await this.redis.call('WAIT', replicas, timeoutMs));
  }
}
