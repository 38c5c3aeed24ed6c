/**
 * Job handlers. Every handler is idempotent: BullMQ delivers at least once (a stalled job runs
 * again and skips its backoff), so each asks the ledger what is already done before it calls a
 * department, and every department request carries the route's idempotency key.
 */
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { isFinalRouteStatus, type DepartmentId, type RouteError } from '../model/case.js';
import type { DepartmentFault } from '../model/outcome.js';
import type { Connector } from '../connectors/types.js';
import type { CaseDoc, Ledger, RouteState } from './ledger.js';
import type { CheckJob, Queues, SubmitJob } from './queues.js';
import { applyDepartmentEvent } from './results.js';
import { canPush, queueMaterialPushes } from './materials.js';
import type { MappingStore } from '../mappings/store.js';
import type { Licences } from '../certs/licences.js';
import type { Circuits } from './circuit.js';
import type { Metrics } from '../gateway/metrics.js';

export interface DeliveryDeps {
  ledger: Ledger;
  queues: Queues;
  connectors: ReadonlyMap<DepartmentId, Connector>;
  log: Logger;
  mappings?: Pick<MappingStore, 'compiledVersion'>;
  licences?: Pick<Licences, 'verify'>;
  /** Per-department circuit breakers; without them every failure spends an attempt. */
  circuits?: Circuits;
  metrics?: Metrics;
  /** How long a route of a callback department may stay silent before it is reconciled by GET. */
  checkAfterMs(d: DepartmentId): number;
  /** Polling departments: first poll, and the ceiling the interval doubles up to while nothing changes. */
  pollEvery(d: DepartmentId): { firstMs: number; maxMs: number };
  authPauseMs(d: DepartmentId): number;
}

function routeError(f: DepartmentFault): RouteError {
  const e: RouteError = { code: f.code, message: f.message, at: new Date().toISOString() };
  if (f.departmentCode !== undefined) e.departmentCode = f.departmentCode;
  return e;
}

function findRoute(doc: CaseDoc, d: DepartmentId): RouteState | undefined {
  return doc.routes.find((r) => r.department === d);
}

/** A route abandoned after its retries may be re-driven by ops; any other final route is done. */
function deliverable(r: RouteState): boolean {
  return r.status === 'QUEUED' || (r.status === 'FAILED' && r.lastError?.code === 'DELIVERY_ABANDONED');
}

async function notifyAfter(deps: DeliveryDeps, caseNo: string, res: { events: { seq: number }[] } | null) {
  const last = res?.events[res.events.length - 1];
  if (last) await deps.queues.addNotify(caseNo, last.seq);
}

export async function handleSubmit(job: Job<SubmitJob>, worker: Worker, deps: DeliveryDeps): Promise<unknown> {
  const { caseNo, department } = job.data;
  const log = deps.log.child({ caseNo, department, jobId: job.id });
  const connector = deps.connectors.get(department);
  if (!connector) throw new Error(`no connector for ${department} in this process`);
  const doc = await deps.ledger.get(caseNo);
  const route = doc && findRoute(doc, department);
  if (!doc || !route) {
    log.error('submit job for a case or route the ledger does not hold');
    return { skipped: 'unknown' };
  }
  if (!deliverable(route)) {
    // Already submitted (e.g. this job stalled after recording): make sure results are followed.
    if (route.receiptNo && !isFinalRouteStatus(route.status)) await deps.queues.addCheck(caseNo, department, firstCheckMs(deps, connector, department));
    if (route.receiptNo && canPush(connector)) await queueMaterialPushes(deps, caseNo, department);
    log.debug({ status: route.status }, 'route already past submission; nothing to send');
    return { skipped: route.status };
  }
  const stored = await deps.ledger.routePayload(caseNo, department);
  if (!stored) throw new UnrecoverableError('route payload missing from the ledger');
  const gate = await circuitGate(deps, worker, department, log);

  // The attempt is counted before the call, so a crash mid-call is still counted.
  await deps.ledger.mutate(caseNo, (d) => {
    findRoute(d, department)!.attempts += 1;
    return d;
  });
  log.info({ attempt: job.attemptsMade + 1 }, 'submitting to department');
  const started = Date.now();
  const send = () => connector.submit({ key: route.key, businessType: stored.businessType, payload: stored.payload });
  const outcome = deps.metrics ? await deps.metrics.timed(department, 'submit', send) : await send();
  const ms = Date.now() - started;

  if (outcome.kind === 'ok' || outcome.kind === 'duplicate' || outcome.kind === 'permanent') await deps.circuits?.success(department);
  if (outcome.kind === 'retry') await circuitFailure(deps, worker, department, gate.probe, outcome.fault, log, () => recordError(deps, caseNo, department, outcome.fault));

  switch (outcome.kind) {
    case 'ok':
    case 'duplicate': {
      const res = await deps.ledger.mutate(caseNo, (d) => {
        const r = findRoute(d, department)!;
        if (!r.receiptNo) r.receiptNo = outcome.value.receiptNo;
        if (deliverable(r)) {
          r.status = 'SUBMITTED';
          r.lastError = null;
        }
        r.submittedAt ??= new Date().toISOString();
        return d;
      });
      await notifyAfter(deps, caseNo, res);
      if (res?.doc.routes.find((r) => r.department === department)?.status === 'WITHDRAWN') {
        // Withdrawn while this submission was on the wire: the receipt is kept and reported, nothing more is sent.
        log.warn({ receiptNo: outcome.value.receiptNo }, 'department accepted a case withdrawn meanwhile; receipt recorded, nothing more sent');
        return { receiptNo: outcome.value.receiptNo, outcome: outcome.kind, withdrawn: true };
      }
      await deps.queues.addCheck(caseNo, department, firstCheckMs(deps, connector, department));
      if (canPush(connector)) await queueMaterialPushes(deps, caseNo, department);
      log.info({ receiptNo: outcome.value.receiptNo, outcome: outcome.kind, ms }, 'department accepted');
      return { receiptNo: outcome.value.receiptNo, outcome: outcome.kind };
    }
    case 'permanent': {
      const res = await deps.ledger.mutate(caseNo, (d) => {
        const r = findRoute(d, department)!;
        if (!deliverable(r)) return null;
        r.status = 'FAILED';
        r.lastError = routeError(outcome.fault);
        return d;
      });
      await notifyAfter(deps, caseNo, res);
      log.warn({ code: outcome.fault.code, departmentCode: outcome.fault.departmentCode, deptMessage: outcome.fault.message, ms }, 'department refused the case for good');
      return { failed: outcome.fault.code };
    }
    case 'retry-after':
    case 'auth': {
      await recordError(deps, caseNo, department, outcome.fault);
      const pause = outcome.kind === 'auth' ? deps.authPauseMs(department) : outcome.delayMs;
      if (outcome.kind === 'auth')
        log.error({ code: outcome.fault.code, departmentCode: outcome.fault.departmentCode, pauseMs: pause }, 'department refused our credentials: delivery paused, check the configuration');
      else log.warn({ delayMs: pause }, 'department asked us to wait');
      // Waiting for the department spends no attempt of the job.
      await worker.rateLimit(pause);
      throw Worker.RateLimitError();
    }
    case 'retry': {
      await recordError(deps, caseNo, department, outcome.fault);
      const attempts = job.opts.attempts ?? 1;
      if (job.attemptsMade + 1 >= attempts) {
        const res = await deps.ledger.mutate(caseNo, (d) => {
          const r = findRoute(d, department)!;
          if (!deliverable(r)) return null;
          r.status = 'FAILED';
          r.lastError = { ...routeError(outcome.fault), code: 'DELIVERY_ABANDONED', message: `delivery abandoned after ${attempts} attempts; last: ${outcome.fault.message}` };
          return d;
        });
        await notifyAfter(deps, caseNo, res);
        log.error({ attempts, code: outcome.fault.code }, 'delivery abandoned after every retry');
        throw new UnrecoverableError(outcome.fault.message);
      }
      log.warn({ code: outcome.fault.code, departmentCode: outcome.fault.departmentCode, ms }, 'department answer says retry later');
      throw new Error(`${outcome.fault.code}: ${outcome.fault.message}`);
    }
  }
}

/** Waits (spending no attempt) while the department's circuit is open; says whether this call is the probe. */
export async function circuitGate(deps: DeliveryDeps, worker: Worker, department: DepartmentId, log: Logger): Promise<{ probe: boolean }> {
  const gate = (await deps.circuits?.before(department)) ?? { allowed: true as const, probe: false };
  if (!gate.allowed) {
    log.debug({ waitMs: gate.waitMs }, 'circuit open: waiting without spending an attempt');
    await worker.rateLimit(gate.waitMs);
    throw Worker.RateLimitError();
  }
  return { probe: gate.probe };
}

/** A retryable failure: counted; when the circuit is (now) open, the job waits instead of spending an attempt. */
export async function circuitFailure(deps: DeliveryDeps, worker: Worker, department: DepartmentId, probe: boolean, fault: DepartmentFault, log: Logger, record: () => Promise<void>): Promise<void> {
  if (!deps.circuits) return;
  const f = await deps.circuits.failure(department, probe);
  if (!f.open) return;
  await record();
  log.warn({ code: fault.code, waitMs: f.waitMs, probe }, probe ? 'probe failed: circuit stays open' : 'circuit opened: department not called until a probe succeeds');
  await worker.rateLimit(f.waitMs);
  throw Worker.RateLimitError();
}

async function recordError(deps: DeliveryDeps, caseNo: string, department: DepartmentId, f: DepartmentFault) {
  await deps.ledger.mutate(caseNo, (d) => {
    const r = findRoute(d, department)!;
    if (!deliverable(r)) return null;
    r.lastError = routeError(f);
    return d;
  });
}

function firstCheckMs(deps: DeliveryDeps, connector: Connector, d: DepartmentId): number {
  return connector.resultMode === 'poll' ? deps.pollEvery(d).firstMs : deps.checkAfterMs(d);
}

/**
 * Follows a route's result. A callback department is asked (GET) only when the route has been
 * silent longer than configured. A polling department is asked after the first interval, then at
 * doubling intervals while nothing changes (back to the first one after a change), never more
 * often than configured and up to the ceiling. The job re-delays itself until the route is final,
 * so one job per route exists at a time.
 */
export async function handleCheck(job: Job<CheckJob & { quietPolls?: number }>, token: string | undefined, deps: DeliveryDeps): Promise<unknown> {
  const { caseNo, department } = job.data;
  const log = deps.log.child({ caseNo, department, jobId: job.id });
  const connector = deps.connectors.get(department);
  const doc = await deps.ledger.get(caseNo);
  const route = doc && findRoute(doc, department);
  if (!route || isFinalRouteStatus(route.status)) return { done: route?.status ?? 'unknown' };
  const polling = connector?.resultMode === 'poll';
  const every = polling ? deps.pollEvery(department).firstMs : deps.checkAfterMs(department);
  let next = every;
  if (connector && route.receiptNo) {
    const silentFor = Date.now() - Date.parse(route.updatedAt);
    if (!polling && silentFor < every) {
      next = every - silentFor;
    } else {
      const receipt = route.receiptNo;
      const ask = () => connector.fetchResult(receipt);
      const outcome = deps.metrics ? await deps.metrics.timed(department, 'result', ask) : await ask();
      if (outcome.kind === 'ok' || outcome.kind === 'duplicate') {
        const applied = await applyDepartmentEvent(deps, caseNo, department, outcome.value);
        if ((applied === 'applied' || applied === 'final') && isFinalRouteStatus(outcome.value.status)) return { done: outcome.value.status };
        if (polling) {
          const quiet = applied === 'applied' ? 0 : (job.data.quietPolls ?? 0) + 1;
          await job.updateData({ ...job.data, quietPolls: quiet });
          next = Math.min(deps.pollEvery(department).maxMs, every * 2 ** quiet);
        }
      } else {
        log.warn({ outcome: outcome.kind, code: outcome.fault.code, departmentCode: outcome.fault.departmentCode }, 'could not fetch the result; will ask again');
        if (outcome.kind === 'retry-after') next = Math.max(outcome.delayMs, every);
      }
    }
  }
  await job.moveToDelayed(Date.now() + next, token);
  throw new DelayedError();
}
