import type { RouteStatus } from './case.js';

/** A department's word on a route, already translated to the unified status by its connector. */
export interface DepartmentEvent {
  receiptNo?: string;
  status: RouteStatus;
  /** The department's own status code, as it sent it. */
  departmentStatus: string;
  /** When the department says it happened (ms since epoch); orders events. */
  occurredAt: number;
  opinion?: string | null;
  licence?: unknown | null;
  /** callback | reconcile | poll */
  source: string;
}
