/** Intake of a unified case: validate, translate, record durably, queue one submission per route. */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { CaseView, DepartmentId } from '../model/case.js';
import { GatewayError } from '../model/errors.js';
import type { MappingStore } from '../mappings/store.js';
import { caseView, type Ledger } from '../queue/ledger.js';
import { validateCase } from './case-validation.js';

/** JSON with keys sorted at every level: two bodies that differ only in key order or spacing are identical. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/**
 * The idempotency key a department sees for a route: deterministic, and within every department's
 * limits (ps SEQ: 1–32 of [A-Za-z0-9]; si serialNo: 1–64), which a raw caseNo may not be.
 */
export function routeKey(caseNo: string, d: DepartmentId): string {
  const h = createHash('sha256').update(`${caseNo}|${d}`).digest('hex');
  return `${d.toUpperCase()}${h.slice(0, 32 - d.length)}`;
}

export interface IntakeDeps {
  ledger: Ledger;
  mappings: MappingStore;
  log: Logger;
  usccExceptions: ReadonlySet<string>;
  /** Departments this installation delivers to; a case routed elsewhere is refused, not parked. */
  connected: ReadonlySet<DepartmentId>;
}

export class Intake {
  constructor(private readonly d: IntakeDeps) {}

  async submit(body: unknown): Promise<{ status: 200 | 202; view: CaseView }> {
    const c = validateCase(body, { usccExceptions: this.d.usccExceptions });
    const mapping = this.d.mappings.current(c.itemCode);
    if (!mapping) throw new GatewayError('MAPPING_NOT_FOUND', `no mapping for item ${c.itemCode}`, [{ path: 'itemCode', code: 'MAPPING_NOT_FOUND', message: 'unknown or retired item code' }]);
    const t = mapping.translate(c);
    if (!t.ok) throw new GatewayError('MAPPING_INPUT_INVALID', `the case lacks what item ${c.itemCode} needs`, t.faults);
    const missing = t.routes.map((r) => r.department).filter((d) => !this.d.connected.has(d));
    if (missing.length)
      throw new GatewayError(
        'DEPARTMENT_NOT_CONNECTED',
        `item ${c.itemCode} routes to ${missing.join(', ')}, which this gateway does not deliver to`,
        missing.map((d) => ({ path: 'itemCode', code: 'DEPARTMENT_NOT_CONNECTED', message: `department ${d} is not enabled in this gateway's configuration` })),
      );
    const bodyHash = createHash('sha256').update(canonicalJson(body)).digest('hex');
    const routes = t.routes.map((r) => ({ ...r, key: routeKey(c.caseNo, r.department) }));
    const res = await this.d.ledger.create(c, bodyHash, mapping.version, routes);
    const log = this.d.log.child({ caseNo: c.caseNo });
    if (!res.created) {
      if (!res.sameBody) throw new GatewayError('CASE_CONFLICT', `case ${c.caseNo} was already accepted with a different body`);
      // Routes still waiting go (back) in the outbox; a job already queued is not added twice.
      await this.d.ledger.markPendingSubmit(res.doc.routes.filter((r) => r.status === 'QUEUED').map((r) => ({ caseNo: c.caseNo, department: r.department })));
      log.info('identical repeat of an accepted case');
      return { status: 200, view: caseView(res.doc) };
    }
    // Recorded with its routes in the outbox, in one script: the worker processes' dispatcher
    // queues them (queue/outbox.ts).
    log.info({ itemCode: c.itemCode, mappingVersion: mapping.version, routes: routes.map((r) => r.department) }, 'case accepted');
    return { status: 202, view: caseView(res.doc) };
  }
}
