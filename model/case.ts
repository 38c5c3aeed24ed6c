/** The unified case (统一办件) and the statuses the platform sees. See specs/platform-api.md. */

export const DEPARTMENTS = ['si', 'tax', 'ps', 'inv'] as const;
export type DepartmentId = (typeof DEPARTMENTS)[number];

export function isDepartment(x: unknown): x is DepartmentId {
  return typeof x === 'string' && (DEPARTMENTS as readonly string[]).includes(x);
}

export interface Applicant {
  kind: 'person' | 'legal';
  name: string;
  idType: 'ID_CARD' | 'USCC' | 'PASSPORT';
  idNumber: string;
  gender?: 'male' | 'female' | 'unknown';
  birthDate?: string;
  ethnicity?: string;
  phone?: string;
  address?: string;
}

export interface Organisation {
  name: string;
  uscc: string;
  legalPerson?: string;
  legalPersonIdNumber?: string;
  address?: string;
  phone?: string;
}

export interface Project {
  code: string;
  name: string;
  totalInvestmentYuan?: string;
  site?: string;
  startYear?: number;
}

export interface MaterialRef {
  id: string;
  name: string;
  fileName: string;
  mediaType: string;
  url: string;
  sha256: string;
  size: number;
}

export interface UnifiedCase {
  caseNo: string;
  itemCode: string;
  itemName?: string;
  channel?: string;
  receivedAt: string;
  applicant: Applicant;
  organisation?: Organisation;
  project?: Project;
  form?: Record<string, unknown>;
  materials?: MaterialRef[];
  callbackUrl?: string;
}

/** Route statuses in the order a route normally passes through them. */
export const ROUTE_STATUSES = [
  'QUEUED',
  'SUBMITTED',
  'IN_REVIEW',
  'RETURNED',
  'APPROVED',
  'REJECTED',
  'FAILED',
  'WITHDRAWN',
  'ATTENTION',
] as const;
export type RouteStatus = (typeof ROUTE_STATUSES)[number];

/** RETURNED is not final: a supplement re-opens the route. */
export const FINAL_ROUTE_STATUSES: ReadonlySet<RouteStatus> = new Set([
  'APPROVED',
  'REJECTED',
  'FAILED',
  'WITHDRAWN',
  'ATTENTION',
]);

export function isFinalRouteStatus(s: RouteStatus): boolean {
  return FINAL_ROUTE_STATUSES.has(s);
}

export type CaseStatus = 'IN_PROGRESS' | 'DONE';
export type MaterialStatus = 'PENDING' | 'DELIVERED' | 'FAILED';

export interface RouteError {
  /** The gateway's stable code, e.g. DEPT_REJECTED_DATA, DELIVERY_ABANDONED. */
  code: string;
  /** The department's own code, when it gave one. */
  departmentCode?: string;
  /** The department's own words where it gave any; otherwise the gateway's. */
  message: string;
  at: string;
}

export interface RouteView {
  department: DepartmentId;
  status: RouteStatus;
  receiptNo: string | null;
  attempts: number;
  lastError: RouteError | null;
  updatedAt: string;
  opinion: string | null;
  materials: MaterialState[];
  licence: unknown | null;
}

/** One material of a route, as the platform sees it. */
export interface MaterialState {
  id: string;
  status: MaterialStatus;
  /** Why it failed, in the department's words where it gave any. */
  error?: { code: string; message: string; departmentCode?: string } | null;
  /** The department's id of the stored file, where it gives one. */
  fileId?: string | null;
  /** Pushes queued for it so far (a supplement of the same id queues another). */
  generation?: number;
  /** A supplement (补正) rather than a material of the original case. */
  supplement?: boolean;
}

export interface CaseView {
  caseNo: string;
  itemCode: string;
  mappingVersion: number;
  acceptedAt: string;
  status: CaseStatus;
  routes: RouteView[];
}

export interface RouteUpdatedEvent {
  event: 'route.updated';
  eventId: string;
  seq: number;
  caseNo: string;
  department: DepartmentId;
  status: RouteStatus;
  receiptNo: string | null;
  opinion: string | null;
  licence: unknown | null;
  lastError?: RouteError | null;
  occurredAt: string;
}
