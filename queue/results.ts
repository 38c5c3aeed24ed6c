/** Applying a department's word on a route to the ledger, whether it came by callback or by asking. */
import type { Logger } from 'pino';
import { isFinalRouteStatus, type DepartmentId } from '../model/case.js';
import type { DepartmentEvent } from '../model/department-event.js';
import type { Ledger } from './ledger.js';
import type { Queues } from './queues.js';
import type { MappingStore } from '../mappings/store.js';
import type { Licences } from '../certs/licences.js';
import type { VerificationReport } from '../certs/verify.js';

export type ApplyResult = 'applied' | 'unchanged' | 'duplicate' | 'stale' | 'final' | 'unknown-route';

export interface ResultDeps {
  ledger: Ledger;
  queues: Queues;
  log: Logger;
  /** The mapping versions cases were accepted with: a route's own status table wins over the connector's. */
  mappings?: Pick<MappingStore, 'compiledVersion'>;
  /** Verifies returned licences against the trust store; without it no licence is ever trusted. */
  licences?: Pick<Licences, 'verify'>;
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
  // Every licence is verified before anyone may treat it as valid, for this case's holder.
  let report: VerificationReport | null = null;
  if (ev.licence && deps.licences) {
    const input = await deps.ledger.input(caseNo);
    const holderIds = [input?.applicant.idNumber, input?.organisation?.uscc, input?.organisation?.legalPersonIdNumber].filter((x): x is string => !!x);
    report = deps.licences.verify(ev.licence, { department, holderIds });
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
      r.licence = report ? { envelope: ev.licence, verification: report } : { envelope: ev.licence, verification: null };
      if (r.status === 'APPROVED' && report?.verdict !== 'VALID') {
        // Never shown as valid: ops must look at it.
        r.status = 'ATTENTION';
        r.lastError = report
          ? { code: 'LICENCE_INVALID', message: `the licence does not verify: ${report.reasons.join(', ')}`, at: new Date().toISOString() }
          : { code: 'LICENCE_NOT_VERIFIED', message: 'no verifier in this process: the licence is not trusted', at: new Date().toISOString() };
      } else r.lastError = null;
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
    deps.log.error({ caseNo, department, code: report ? 'LICENCE_INVALID' : 'LICENCE_NOT_VERIFIED', reasons: report?.reasons }, 'licence returned that does not verify; route needs attention');
  else if (report) deps.log.info({ caseNo, department, verdict: report.verdict, reasons: report.reasons }, 'licence verified');
  deps.log.info({ caseNo, department, source: ev.source, departmentStatus: ev.departmentStatus, result }, 'department result');
  return result;
}
