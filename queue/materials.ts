/**
 * `push-material` jobs: one per material and route (deterministic id), pushing the platform's
 * bytes to the department by the department's own method (connectors/<dept>), resuming where an
 * earlier attempt stopped, and recording each material's fate on its route.
 */
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { DepartmentId, MaterialState } from '../model/case.js';
import type { DepartmentFault } from '../model/outcome.js';
import { PlatformFileError } from '../connectors/material-stream.js';
import type { Connector, MaterialPusher } from '../connectors/types.js';
import { circuitFailure, circuitGate, type DeliveryDeps } from './delivery.js';
import type { CaseDoc } from './ledger.js';
import { openPlatformFile } from './platform-files.js';

export interface PushJob {
  caseNo: string;
  department: DepartmentId;
  materialId: string;
  resume?: Record<string, unknown>;
}

export interface MaterialDeps {
  archiveToken: string | undefined;
  downloadTimeoutMs: number;
}

/** The route was withdrawn while its material was on the wire: the push stops where it is. */
class WithdrawnError extends Error {}

/** How often a running push looks whether its case was withdrawn meanwhile. */
const WITHDRAWAL_CHECK_MS = 1000;

export const canPush = (c: Connector | undefined): c is Connector & MaterialPusher => !!c && typeof (c as Partial<MaterialPusher>).pushMaterial === 'function';

function materialOf(doc: CaseDoc | null, d: DepartmentId, id: string): MaterialState | undefined {
  return doc?.routes.find((r) => r.department === d)?.materials.find((m) => m.id === id);
}

async function setMaterial(deps: DeliveryDeps, caseNo: string, d: DepartmentId, id: string, patch: Partial<MaterialState>): Promise<void> {
  await deps.ledger.mutate(caseNo, (doc) => {
    const m = materialOf(doc, d, id);
    if (!m || m.status !== 'PENDING') return null;
    Object.assign(m, patch);
    return doc;
  });
}

/** Queues a push for every PENDING material of the route (a job that exists already is left alone). */
export async function queueMaterialPushes(deps: DeliveryDeps, caseNo: string, d: DepartmentId): Promise<number> {
  const doc = await deps.ledger.get(caseNo);
  const route = doc?.routes.find((r) => r.department === d);
  if (!route?.receiptNo || route.status === 'WITHDRAWN') return 0;
  let n = 0;
  for (const m of route.materials) {
    if (m.status !== 'PENDING') continue;
    await deps.queues.addPushMaterial(caseNo, d, m.id, m.generation ?? 1);
    n++;
  }
  return n;
}

/** A RETURNED route whose supplement materials are all delivered goes back to review. */
async function reopenAfterSupplement(deps: DeliveryDeps, caseNo: string, d: DepartmentId): Promise<void> {
  const res = await deps.ledger.mutate(caseNo, (doc) => {
    const r = doc.routes.find((x) => x.department === d);
    if (!r || r.status !== 'RETURNED') return null;
    const supplements = r.materials.filter((m) => m.supplement);
    if (!supplements.length || supplements.some((m) => m.status !== 'DELIVERED')) return null;
    r.status = 'IN_REVIEW';
    r.opinion = null;
    return doc;
  });
  const last = res?.events.at(-1);
  if (last) {
    await deps.queues.addNotify(caseNo, last.seq);
    deps.log.info({ caseNo, department: d }, 'supplement delivered: route back in review');
  }
}

export async function handlePushMaterial(job: Job<PushJob>, worker: Worker, deps: DeliveryDeps & MaterialDeps): Promise<unknown> {
  const { caseNo, department, materialId } = job.data;
  const log = deps.log.child({ caseNo, department, jobId: job.id, materialId });
  const connector = deps.connectors.get(department);
  if (!canPush(connector)) throw new UnrecoverableError(`the ${department} connector cannot push materials`);
  const doc = await deps.ledger.get(caseNo);
  const route = doc?.routes.find((r) => r.department === department);
  const mat = materialOf(doc, department, materialId);
  if (!route || !mat) return { skipped: 'unknown' };
  // Withdrawn, or already settled (a re-run after a crash): nothing more to send.
  if (route.status === 'WITHDRAWN' || mat.status !== 'PENDING') return { skipped: mat.status, route: route.status };
  if (!route.receiptNo) throw new Error('route not yet accepted by the department');
  const ref = await deps.ledger.materialRef(caseNo, materialId);
  if (!ref) throw new UnrecoverableError(`material ${materialId} has no reference in the ledger`);

  const gate = await circuitGate(deps, worker, department, log);
  log.info({ size: ref.size, resume: Object.keys(job.data.resume ?? {}).length > 0 }, 'pushing material to department');
  const started = Date.now();
  const watchers: NodeJS.Timeout[] = [];
  const watch = (stream: NodeJS.ReadableStream) => {
    const t = setInterval(() => {
      deps.ledger.get(caseNo).then(
        (d) => {
          if (d?.routes.find((r) => r.department === department)?.status === 'WITHDRAWN') (stream as unknown as { destroy(e: Error): void }).destroy(new WithdrawnError('case withdrawn'));
        },
        () => undefined,
      );
    }, WITHDRAWAL_CHECK_MS);
    watchers.push(t);
    return stream;
  };
  let outcome;
  try {
    const push = (ctx: Parameters<typeof connector.pushMaterial>[0]) => (deps.metrics ? deps.metrics.timed(department, 'push', () => connector.pushMaterial(ctx)) : connector.pushMaterial(ctx));
    outcome = await push({
      receiptNo: route.receiptNo,
      routeKey: route.key,
      material: { id: ref.id, fileName: ref.fileName, mediaType: ref.mediaType, sha256: ref.sha256, size: ref.size, open: async () => watch(await openPlatformFile(ref.url, deps.archiveToken, deps.downloadTimeoutMs)) },
      resume: job.data.resume ?? {},
      remember: async (patch) => {
        job.data.resume = { ...(job.data.resume ?? {}), ...patch };
        await job.updateData(job.data);
      },
    });
  } catch (e) {
    if (e instanceof WithdrawnError) {
      log.info('case withdrawn during the push: stopped, the department did not get the whole file');
      return { skipped: 'withdrawn' };
    }
    if (!(e instanceof PlatformFileError)) throw e;
    outcome = { kind: 'retry' as const, fault: { code: e.status === 404 ? 'PLATFORM_FILE_MISSING' : 'PLATFORM_FILE_UNREACHABLE', message: e.message, ...(e.status ? { departmentCode: String(e.status) } : {}) } };
  }
  finally {
    for (const t of watchers) clearInterval(t);
  }
  const ms = Date.now() - started;
  if (outcome.kind === 'ok' || outcome.kind === 'duplicate') await deps.circuits?.success(department);
  // Only the department's own failures count toward its circuit, not the platform archive's.
  if (outcome.kind === 'retry' && outcome.fault.code.startsWith('DEPT_')) {
    const f = outcome.fault;
    await circuitFailure(deps, worker, department, gate.probe, f, log, () => setMaterial(deps, caseNo, department, materialId, { error: { code: f.code, message: f.message } }));
  }
  const fail = async (f: DepartmentFault) => {
    await setMaterial(deps, caseNo, department, materialId, { status: 'FAILED', error: { code: f.code, message: f.message, ...(f.departmentCode ? { departmentCode: f.departmentCode } : {}) } });
  };
  switch (outcome.kind) {
    case 'ok':
    case 'duplicate': {
      await setMaterial(deps, caseNo, department, materialId, { status: 'DELIVERED', error: null, fileId: outcome.value.fileId ?? null });
      await reopenAfterSupplement(deps, caseNo, department);
      log.info({ sent: outcome.value.sent, skipped: outcome.value.skipped, ms, mbPerS: Math.round((ref.size / 1e6 / Math.max(ms, 1)) * 1000 * 10) / 10 }, 'material delivered');
      return outcome.value;
    }
    case 'permanent':
      await fail(outcome.fault);
      log.warn({ code: outcome.fault.code, departmentCode: outcome.fault.departmentCode, reason: outcome.fault.message }, 'material failed for good');
      return { failed: outcome.fault.code };
    case 'retry-after':
    case 'auth':
      await setMaterial(deps, caseNo, department, materialId, { error: { code: outcome.fault.code, message: outcome.fault.message } });
      await worker.rateLimit(outcome.kind === 'auth' ? deps.authPauseMs(department) : outcome.delayMs);
      throw Worker.RateLimitError();
    case 'retry': {
      const attempts = job.opts.attempts ?? 1;
      if (job.attemptsMade + 1 >= attempts) {
        await fail({ ...outcome.fault, message: `${outcome.fault.message} (gave up after ${attempts} attempts)` });
        log.error({ code: outcome.fault.code, attempts }, 'material failed after every retry');
        throw new UnrecoverableError(outcome.fault.message);
      }
      await setMaterial(deps, caseNo, department, materialId, { error: { code: outcome.fault.code, message: outcome.fault.message } });
      log.warn({ code: outcome.fault.code, reason: outcome.fault.message }, 'material push will be retried');
      throw new Error(`${outcome.fault.code}: ${outcome.fault.message}`);
    }
  }
}
