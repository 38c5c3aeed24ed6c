/**
 * What a department's answer means for the caller. Connectors classify their department's answers
 * into these; the queue layer acts on them without knowing any department's field names.
 */
export interface DepartmentFault {
  /** The gateway's stable code for this kind of answer. */
  code: string;
  /** The department's own code (HTTP status, error_code, resultCode …). */
  departmentCode?: string;
  /** The department's own words, verbatim where it gave any. */
  message: string;
}

export type Outcome<T> =
  | { kind: 'ok'; value: T }
  /** The department already held this idempotency key; value is the first acceptance. */
  | { kind: 'duplicate'; value: T }
  | { kind: 'retry'; fault: DepartmentFault }
  | { kind: 'retry-after'; delayMs: number; fault: DepartmentFault }
  | { kind: 'permanent'; fault: DepartmentFault }
  /** Our credentials are refused: a configuration problem, not a reason to hammer the department. */
  | { kind: 'auth'; fault: DepartmentFault };

export type OutcomeKind = Outcome<unknown>['kind'];
