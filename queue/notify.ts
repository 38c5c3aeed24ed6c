/**
 * Events to the platform: `route.updated`, signed (X-Gateway-Signature), at least once, in seq
 * order per case. A notify job for seq N delivers every undelivered event up to N in order, so a
 * later event never overtakes an earlier one; a per-case lock keeps two such jobs (say, both
 * retrying while the platform was down) from sending at the same time.
 */
import http from 'node:http';
import https from 'node:https';
import axios from 'axios';
import { randomUUID } from 'node:crypto';
import { DelayedError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { signatureHeader } from '../model/signature.js';
import type { ReplicaBarrier } from './durability.js';
import type { Ledger } from './ledger.js';
import type { NotifyJob } from './queues.js';

export interface NotifyDeps {
  ledger: Ledger;
  log: Logger;
  secret: string;
  defaultCallbackUrl: string;
  timeoutMs: number;
  /**
   * redis.waitReplicas: an event goes out only once the replicas hold it. Otherwise a failover
   * could take back an event the platform has seen, and the next change would reuse its seq, which
   * the platform ignores as already passed: it would never hear of that change.
   */
  replicas?: ReplicaBarrier;
}

export function createEventSender(timeoutMs: number) {
  const client = axios.create({
    timeout: timeoutMs,
    httpAgent: new http.Agent({ keepAlive: true }),
    httpsAgent: new https.Agent({ keepAlive: true }),
    maxRedirects: 0,
    responseType: 'text',
    transformResponse: [(d: unknown) => d],
    validateStatus: () => true,
    maxContentLength: 64 * 1024,
  });
  return async (url: string, raw: string, secret: string, signal?: AbortSignal): Promise<number> => {
    const res = await client.post(url, raw, {
      headers: { 'Content-Type': 'application/json; charset=utf-8', 'X-Gateway-Signature': signatureHeader(raw, secret) },
      ...(signal ? { signal } : {}),
    });
    return res.status;
  };
}

/** How long a job waits before trying again when another job is sending the case's events. */
const LOCK_BUSY_RETRY_MS = 250;
/**
 * A sender's hold on a case: short, and renewed every third of it while the sender lives, so a
 * worker that dies mid-send (SIGKILL) holds up the case's events for seconds, not for a whole
 * send timeout.
 */
export const NOTIFY_LOCK_TTL_MS = 5000;

export async function handleNotify(job: Job<NotifyJob>, token: string | undefined, deps: NotifyDeps, send: ReturnType<typeof createEventSender>): Promise<unknown> {
  const { caseNo } = job.data;
  const owner = randomUUID();
  if (!(await deps.ledger.lockCase('notify', caseNo, owner, NOTIFY_LOCK_TTL_MS))) {
    // Not a failure: wait for the other sender without spending an attempt.
    await job.moveToDelayed(Date.now() + LOCK_BUSY_RETRY_MS, token);
    throw new DelayedError();
  }
  // Lost the lock (it lapsed while this process stalled, and another sender took it): the send in
  // flight is broken off, and this job tries again later.
  const lost = new AbortController();
  const heartbeat = setInterval(() => {
    deps.ledger.renewCaseLock('notify', caseNo, owner, NOTIFY_LOCK_TTL_MS).then(
      (held) => held || lost.abort(),
      () => undefined, // a Redis blip: the next beat tries again, and the lock lapses if none gets through
    );
  }, NOTIFY_LOCK_TTL_MS / 3);
  heartbeat.unref();
  try {
    return await sendInOrder(job, deps, send, owner, lost.signal);
  } finally {
    clearInterval(heartbeat);
    await deps.ledger.unlockCase('notify', caseNo, owner);
  }
}

async function sendInOrder(job: Job<NotifyJob>, deps: NotifyDeps, send: ReturnType<typeof createEventSender>, owner: string, lost: AbortSignal): Promise<unknown> {
  const { caseNo, seq } = job.data;
  const state = await deps.ledger.deliveryState(caseNo);
  if (!state || state.delivered >= seq) return { delivered: state?.delivered ?? 0 };
  const input = await deps.ledger.input(caseNo);
  const url = input?.callbackUrl || deps.defaultCallbackUrl;
  if (!url) {
    await deps.ledger.markDelivered(caseNo, seq);
    return { delivered: seq, note: 'no callback URL' };
  }
  const raws = await deps.ledger.events(caseNo, state.delivered, seq);
  let n = state.delivered;
  for (const raw of raws) {
    n += 1;
    const epoch = deps.replicas?.epoch;
    if (lost.aborted || !(await deps.ledger.renewCaseLock('notify', caseNo, owner, NOTIFY_LOCK_TTL_MS))) throw new Error('lost the case lock while sending events; will retry');
    // The renewal is a write on this connection made after the event's: once the replicas hold
    // it, they hold the event (one replication stream, in order).
    await deps.replicas?.wait(epoch);
    let status: number;
    try {
      status = await send(url, raw, deps.secret, lost);
    } catch (e) {
      if (lost.aborted) throw new Error('lost the case lock while sending events; will retry');
      deps.log.warn({ caseNo, seq: n, jobId: job.id, err: (e as Error).message }, 'platform callback unreachable; will retry');
      throw new Error(`platform callback unreachable: ${(e as Error).message}`);
    }
    if (status < 200 || status >= 300) {
      deps.log.warn({ caseNo, seq: n, jobId: job.id, status }, 'platform callback refused the event; will retry');
      throw new Error(`platform callback answered ${status}`);
    }
    await deps.ledger.markDelivered(caseNo, n);
    deps.log.info({ caseNo, seq: n, jobId: job.id }, 'event delivered to the platform');
  }
  return { delivered: n };
}
