/**
 * One interface for every department. A connector knows its department's protocol and nothing
 * else: it never sees Redis, the ledger or BullMQ, and it answers with outcomes (model/outcome.ts).
 */
import type { DepartmentId } from '../model/case.js';
import type { DepartmentEvent } from '../model/department-event.js';
import type { Outcome } from '../model/outcome.js';

export interface SubmitRequest {
  /** The route's idempotency key: the department deduplicates on it. */
  key: string;
  businessType: string;
  /** The department's request fields, as the mapping produced them. */
  payload: Record<string, unknown>;
}

export interface Receipt {
  receiptNo: string;
}

/** An inbound callback, verified and parsed. */
export interface CallbackEvent {
  /** The route's idempotency key, when the department echoes it. */
  key?: string;
  receiptNo?: string;
  event: DepartmentEvent;
}

export type CallbackResult =
  | { ok: true; events: CallbackEvent[]; /** the body the department expects on success */ reply: unknown }
  | { ok: false; status: 400 | 401; code: string; message: string };

export interface Connector {
  readonly department: DepartmentId;
  /** How results come back: the department calls us, or we must ask. */
  readonly resultMode: 'callback' | 'poll';
  submit(req: SubmitRequest): Promise<Outcome<Receipt>>;
  fetchResult(receiptNo: string): Promise<Outcome<DepartmentEvent>>;
  /** Verifies and parses a callback from the raw bytes as received. Absent where the department never calls. */
  parseCallback?(raw: Buffer, headers: Record<string, string | string[] | undefined>, now: number): CallbackResult;
  close(): Promise<void>;
}
