/** The gateway's stable error codes and the error body every API answers with. */

export const ErrorCodes = {
  // caller faults (4xx)
  MALFORMED_JSON: 400,
  VALIDATION_FAILED: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  BODY_TOO_LARGE: 413,
  INVALID_IDENTIFIER: 422,
  MAPPING_INPUT_INVALID: 422,
  MAPPING_NOT_FOUND: 404,
  MAPPING_INVALID: 400,
  MAPPING_CONFLICT: 409,
  VERSION_NOT_FOUND: 404,
  CASE_NOT_FOUND: 404,
  CASE_CONFLICT: 409,
  ROUTE_NOT_RETURNED: 409,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  BAD_SIGNATURE: 401,
  RATE_LIMITED: 429,
  /** Refused by the HTTP layer before any route: too slow, headers too large, not HTTP. */
  REQUEST_TIMEOUT: 408,
  HEADERS_TOO_LARGE: 431,
  MALFORMED_HTTP: 400,
  // gateway faults (5xx)
  SERVICE_UNAVAILABLE: 503,
  /** Our configuration, not the caller's fault: the item routes to a department not enabled here. */
  DEPARTMENT_NOT_CONNECTED: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface ErrorDetail {
  /** JSON path of the offending field, e.g. `applicant.idNumber` or `materials[2].sha256`. */
  path: string;
  code: string;
  message: string;
}

export interface ErrorBody {
  error: { code: string; message: string; details: ErrorDetail[] };
}

export class GatewayError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetail[] = [],
    status?: number,
  ) {
    super(message);
    this.name = 'GatewayError';
    this.status = status ?? ErrorCodes[code];
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}
