/** Applying a department's word on a route to the ledger, whether it came by callback or by asking. */
import type { Logger } from 'pino';
import { isFinalRouteStatus, type DepartmentId } from '../model/case.js';
import type { DepartmentEvent } from '../model/department-event.js';
import type { Ledger } from './ledger.js';
import type { Queues } from './queues.js';
import type { MappingStore } from '../mappings/store.js';

export type ApplyResult = 'applied' | 'unchanged' | 'duplicate' | 'stale' | 'final' | 'unknown-route';

export interface ResultDeps {
  ledger: Ledger;
  queues: Queues;
  log: Logger;
  /** The mapping versions cases were accepted with: a route's own status table wins over the connector's. */
  mappings?: Pick<MappingStore, 'compiledVersion'>;
}

/**
 * Orders by the department's own time: an event older than the last one applied is ignored, the
 * same status at the same time is a duplicate, and a final route never changes again.
 */
export async function applyDepartmentEvent(deps: ResultDeps, caseNo: string, department: DepartmentId, given: DepartmentEvent): Promise<ApplyResult> {
  let ev = given;
  if (deps.mappings) {
    const doc = await deps.ledger.get(caseNo);
    const mapping = doc ? await deps.mappings.compiledVersion(doc.itemCode, doc.mappingVersion) : null;
    const mapped = mapping?.statusFor(department, given.departmentStatus);
    if (mapped) ev = { ...given, status: mapped };
  }
  let result: ApplyResult = 'applied';
  const res = await deps.ledger.mutate(caseNo, (doc) => {
    const r = doc.routes.find((x) => x.department === department);
    if (!r) {
      result = 'unknown-route';
      return null;
    }
    if (isFinalRouteStatus(r.status)) {
      result = 'final';
      return null;
    }
    if (r.lastEventAt !== null) {
      if (ev.occurredAt < r.lastEventAt) {
        result = 'stale';
        return null;
      }
      if (ev.occurredAt === r.lastEventAt && ev.departmentStatus === r.departmentStatus) {
        result = 'duplicate';
        return null;
      }
    }
    r.lastEventAt = ev.occurredAt;
    r.departmentStatus = ev.departmentStatus;
    if (ev.receiptNo && !r.receiptNo) r.receiptNo = ev.receiptNo;
    if (ev.opinion !== undefined && ev.opinion !== null) r.opinion = ev.opinion;
    // The department's 'received' does not move a route back from where our own submission put it.
    if (!(ev.status === 'SUBMITTED' && r.status !== 'QUEUED')) r.status = ev.status;
    if (r.status !== 'QUEUED' && !r.submittedAt) r.submittedAt = new Date().toISOString();
    if (ev.licence) {
      r.licence = ev.licence;
      if (r.status === 'APPROVED') {
        // Until licence verification (certs/) is in place, a licence is never shown as valid.
        r.status = 'ATTENTION';
        r.lastError = { code: 'LICENCE_NOT_VERIFIED', message: 'the licence has not been verified against the trust store', at: new Date().toISOString() };
      }
    } else if (r.status !== 'FAILED') {
      r.lastError = null;
    }
    return doc;
  });
  if (!res) return 'unknown-route';
  if (result === 'applied' && !res.events.length) result = 'unchanged';
  const last = res.events[res.events.length - 1];
  if (last) await deps.queues.addNotify(caseNo, last.seq);
  if (result === 'applied' && res.doc.routes.find((r) => r.department === department)?.status === 'ATTENTION')
    deps.log.error({ caseNo, department, code: 'LICENCE_NOT_VERIFIED' }, 'licence returned that is not verified; route needs attention');
  deps.log.info({ caseNo, department, source: ev.source, departmentStatus: ev.departmentStatus, result }, 'department result');
  return result;
}
