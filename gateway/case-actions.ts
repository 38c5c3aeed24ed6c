/**
 * What the platform may do to a case after intake: withdraw it (撤件) and supplement a route the
 * department returned (补正). Both change the ledger first, then the queues.
 */
import type { Logger } from 'pino';
import { isDepartment, isFinalRouteStatus, type DepartmentId, type MaterialRef } from '../model/case.js';
import { GatewayError } from '../model/errors.js';
import { ajvFaults } from '../mappings/language.js';
import { caseView, type Ledger } from '../queue/ledger.js';
import type { Queues } from '../queue/queues.js';
import { validateSupplementBody } from './case-validation.js';

export interface CaseActionDeps {
  ledger: Ledger;
  queues: Queues;
  log: Logger;
}

const CASE_NO = /^[A-Za-z0-9_-]{1,64}$/;

async function load(d: CaseActionDeps, caseNo: string) {
  const doc = CASE_NO.test(caseNo) ? await d.ledger.get(caseNo) : null;
  if (!doc) throw new GatewayError('CASE_NOT_FOUND', `no case ${caseNo}`);
  return doc;
}

/**
 * Every route not yet final becomes WITHDRAWN (no department spec has a withdrawal call, so this is
 * local), its pending materials are marked so, and its waiting jobs are removed. A submission on
 * the wire at this moment that the department then accepts is recorded on the withdrawn route and
 * reported, never lost.
 */
export async function withdrawCase(d: CaseActionDeps, caseNo: string): Promise<{ status: 202; view: ReturnType<typeof caseView> }> {
  await load(d, caseNo);
  const at = new Date().toISOString();
  const touched: DepartmentId[] = [];
  const res = await d.ledger.mutate(caseNo, (doc) => {
    let changed = false;
    for (const r of doc.routes) {
      if (isFinalRouteStatus(r.status)) continue;
      r.status = 'WITHDRAWN';
      r.lastError = null;
      for (const m of r.materials) if (m.status === 'PENDING') Object.assign(m, { status: 'FAILED', error: { code: 'WITHDRAWN', message: `the case was withdrawn at ${at}; not sent` } });
      touched.push(r.department);
      changed = true;
    }
    return changed ? doc : null;
  });
  if (!res) throw new GatewayError('CASE_NOT_FOUND', `no case ${caseNo}`);
  const last = res.events.at(-1);
  if (last) await d.queues.addNotify(caseNo, last.seq);
  let removed = 0;
  for (const dept of touched) removed += await d.queues.removeCaseJobs(caseNo, dept, res.doc.routes.find((r) => r.department === dept)!.materials);
  d.log.info({ caseNo, routes: touched, jobsRemoved: removed }, touched.length ? 'case withdrawn' : 'withdrawal of a case already final: nothing to do');
  return { status: 202, view: caseView(res.doc) };
}


/**
 * Supplement (补正) for a RETURNED route: the new materials are recorded and pushed; once all are
 * delivered the route goes back to IN_REVIEW and the department's next word is followed. A repeat
 * of the same supplement is accepted again and changes nothing.
 */
export async function supplementCase(d: CaseActionDeps, caseNo: string, body: unknown): Promise<{ status: 202; view: ReturnType<typeof caseView> }> {
  if (!validateSupplementBody(body)) throw new GatewayError('VALIDATION_FAILED', 'invalid supplement', ajvFaults(validateSupplementBody.errors));
  const b = body as { department: string; materials: MaterialRef[] };
  if (!isDepartment(b.department)) throw new GatewayError('VALIDATION_FAILED', 'unknown department', [{ path: 'department', code: 'INVALID', message: 'one of si, tax, ps, inv' }]);
  const dept = b.department;
  const seen = new Set<string>();
  b.materials.forEach((m, i) => {
    if (seen.has(m.id)) throw new GatewayError('VALIDATION_FAILED', 'duplicate material id', [{ path: `materials[${i}].id`, code: 'DUPLICATE', message: `material id ${m.id} appears twice` }]);
    seen.add(m.id);
  });
  const doc = await load(d, caseNo);
  const route = doc.routes.find((r) => r.department === dept);
  if (!route) throw new GatewayError('VALIDATION_FAILED', 'the case has no such route', [{ path: 'department', code: 'NO_ROUTE', message: `case ${caseNo} does not go to ${dept}` }]);
  // A repeat of a supplement already taken: same ids, same bytes declared.
  const stored = await Promise.all(b.materials.map((m) => d.ledger.materialRef(caseNo, m.id)));
  const repeat = b.materials.every((m, i) => stored[i]?.sha256 === m.sha256 && route.materials.some((x) => x.id === m.id && x.supplement));
  if (repeat) return { status: 202, view: caseView(doc) };
  if (route.status !== 'RETURNED')
    throw new GatewayError('ROUTE_NOT_RETURNED', `route ${dept} of case ${caseNo} is ${route.status}; supplements are taken only for a RETURNED route`, [{ path: 'department', code: 'ROUTE_NOT_RETURNED', message: route.status }]);
  await d.ledger.storeMaterialRefs(caseNo, b.materials);
  const res = await d.ledger.mutate(caseNo, (x) => {
    const r = x.routes.find((y) => y.department === dept)!;
    if (r.status !== 'RETURNED') return null;
    for (const m of b.materials) {
      const existing = r.materials.find((y) => y.id === m.id);
      if (existing) Object.assign(existing, { status: 'PENDING', error: null, fileId: null, supplement: true, generation: (existing.generation ?? 1) + 1 });
      else r.materials.push({ id: m.id, status: 'PENDING', supplement: true, generation: 1 });
    }
    return x;
  });
  if (!res) throw new GatewayError('CASE_NOT_FOUND', `no case ${caseNo}`);
  const r = res.doc.routes.find((y) => y.department === dept)!;
  for (const m of b.materials) await d.queues.addPushMaterial(caseNo, dept, m.id, r.materials.find((y) => y.id === m.id)!.generation ?? 1);
  d.log.info({ caseNo, department: dept, materials: b.materials.length }, 'supplement accepted; materials queued');
  return { status: 202, view: caseView(res.doc) };
}
