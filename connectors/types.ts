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
  | {
      ok: true;
      events: CallbackEvent[];
      /** the body the department expects on success */
      reply: unknown;
      /** A one-time value (nonce) the gateway must not accept twice within ttlSeconds. */
      replay?: { id: string; ttlSeconds: number };
    }
  | { ok: false; status: 400 | 401; code: string; message: string; /** the department's own error body, if it has one */ reply?: unknown };

/** The request line of an inbound callback, for departments that sign it. */
export interface CallbackTarget {
  method: string;
  /** Path and query exactly as requested. */
  pathAndQuery: string;
}

/** A department request exactly as it would go on the wire, for the mapping preview. */
export interface RequestPreview {
  method: string;
  url: string;
  /** Headers as sent, with credentials replaced by a placeholder. */
  headers: Record<string, string>;
  /** The body as text: JSON, XML, or GBK decoded back to text. */
  body: string;
  /** The body's encoding on the wire. */
  encoding: 'utf-8' | 'gbk';
}

export interface Connector {
  readonly department: DepartmentId;
  /** How results come back: the department calls us, or we must ask. */
  readonly resultMode: 'callback' | 'poll';
  submit(req: SubmitRequest): Promise<Outcome<Receipt>>;
  /** The submission `submit` would send for `req`, built by the same code, sending nothing. */
  preview(req: SubmitRequest): { ok: true; request: RequestPreview } | { ok: false; fault: { code: string; message: string } };
  fetchResult(receiptNo: string): Promise<Outcome<DepartmentEvent>>;
  /** Verifies and parses a callback from the raw bytes as received. Absent where the department never calls. */
  parseCallback?(raw: Buffer, headers: Record<string, string | string[] | undefined>, now: number, target: CallbackTarget): CallbackResult;
  close(): Promise<void>;
}

/** A material to push: what the case declares, and a way to read its bytes from the platform. */
export interface MaterialSource {
  id: string;
  fileName: string;
  mediaType: string;
  /** Declared SHA-256 (lower-case hex) and size: binding. */
  sha256: string;
  size: number;
  /** Streams the bytes from the platform archive, from the start. Throws a PlatformFileError. */
  open(): Promise<NodeJS.ReadableStream>;
}

export interface PushContext {
  receiptNo: string;
  routeKey: string;
  material: MaterialSource;
  /** What an earlier attempt of this push remembered (an upload id, chunks acknowledged …). */
  resume: Record<string, unknown>;
  /** Remembers progress durably, so a push taken over after a crash resumes instead of restarting. */
  remember(patch: Record<string, unknown>): Promise<void>;
}

export interface PushReceipt {
  /** The department's id of the stored file, where it gives one. */
  fileId?: string;
  /** Chunks (or parts) sent by this attempt, and those the department already held. */
  sent: number;
  skipped: number;
}

export interface MaterialPusher {
  pushMaterial(ctx: PushContext): Promise<Outcome<PushReceipt>>;
}
