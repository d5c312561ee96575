/**
 * Every error the server can answer, defined once: a stable `code`, its HTTP status and
 * the OpenAI error `type`. Routes and domain modules throw `ApiError`; one handler turns
 * it into the OpenAI envelope `{error: {message, type, param, code}}`.
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'server_error'
  | 'service_unavailable';

interface ErrorDef {
  status: number;
  type: ErrorType;
  /** 503s a client should retry after this many seconds (the SDKs honour `retry-after`). */
  retryAfter?: number;
  /** Failures a retry cannot mend: sends `x-should-retry: false`. */
  noRetry?: boolean;
}

export const ERROR_CODES = {
  // request shape
  invalid_request: { status: 400, type: 'invalid_request_error' },
  invalid_json: { status: 400, type: 'invalid_request_error' },
  missing_required_parameter: { status: 400, type: 'invalid_request_error' },
  invalid_type: { status: 400, type: 'invalid_request_error' },
  invalid_value: { status: 400, type: 'invalid_request_error' },
  unknown_parameter: { status: 400, type: 'invalid_request_error' },
  parameter_out_of_range: { status: 400, type: 'invalid_request_error' },
  context_length_exceeded: { status: 400, type: 'invalid_request_error' },
  unsupported_feature: { status: 400, type: 'invalid_request_error' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error' },
  body_too_large: { status: 413, type: 'invalid_request_error' },
  route_not_found: { status: 404, type: 'not_found_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' },
  forbidden: { status: 403, type: 'invalid_request_error' },
  headers_too_large: { status: 431, type: 'invalid_request_error', noRetry: true },
  invalid_api_key: { status: 401, type: 'authentication_error' },
  // models
  invalid_model_id: { status: 400, type: 'invalid_request_error' },
  model_not_found: { status: 404, type: 'not_found_error' },
  model_exists: { status: 409, type: 'invalid_request_error', noRetry: true },
  model_not_downloaded: { status: 409, type: 'invalid_request_error', noRetry: true },
  model_not_running: { status: 409, type: 'invalid_request_error', noRetry: true },
  model_running: { status: 409, type: 'invalid_request_error', noRetry: true },
  model_not_deletable: { status: 409, type: 'invalid_request_error', noRetry: true },
  model_invalid: { status: 422, type: 'invalid_request_error', noRetry: true },
  model_not_capable: { status: 400, type: 'invalid_request_error' },
  model_load_failed: { status: 500, type: 'server_error', noRetry: true },
  model_loading: { status: 503, type: 'service_unavailable', retryAfter: 1 },
  model_stopped: { status: 503, type: 'service_unavailable', retryAfter: 1 },
  engine_unavailable: { status: 501, type: 'server_error', noRetry: true },
  // stored responses (Responses API)
  response_not_found: { status: 404, type: 'not_found_error' },
  // classification inputs
  invalid_image: { status: 400, type: 'invalid_request_error' },
  image_too_large: { status: 400, type: 'invalid_request_error' },
  input_too_long: { status: 400, type: 'invalid_request_error' },
  wrong_input_kind: { status: 400, type: 'invalid_request_error' },
  unsupported_model_inputs: { status: 400, type: 'invalid_request_error' },
  inference_failed: { status: 500, type: 'server_error' },
  // load and scheduling
  queue_full: { status: 503, type: 'service_unavailable', retryAfter: 1 },
  maintenance: { status: 503, type: 'service_unavailable', retryAfter: 30 },
  request_timeout: { status: 504, type: 'server_error' },
  request_aborted: { status: 499, type: 'invalid_request_error' },
  out_of_memory: { status: 507, type: 'server_error', noRetry: true },
  // downloads and imports
  insufficient_storage: { status: 507, type: 'server_error', noRetry: true },
  model_not_downloadable: { status: 409, type: 'invalid_request_error', noRetry: true },
  download_failed: { status: 502, type: 'server_error' },
  checksum_mismatch: { status: 502, type: 'server_error', noRetry: true },
  source_not_found: { status: 404, type: 'not_found_error' },
  source_access_denied: { status: 403, type: 'invalid_request_error' },
  source_unreachable: { status: 502, type: 'server_error' },
  /** api engine: the upstream server refused the request as malformed (its message is kept). */
  upstream_rejected: { status: 400, type: 'invalid_request_error' },
  /** api engine: the upstream server failed or refused the key. */
  upstream_error: { status: 502, type: 'server_error' },
  upstream_unreachable: { status: 502, type: 'server_error' },
  /** api engine: the upstream said 429 (rate limit) or 503; retry-after is passed on. */
  upstream_busy: { status: 503, type: 'service_unavailable', retryAfter: 1 },
  internal_error: { status: 500, type: 'server_error' },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ApiErrorOptions {
  /** The request field, file or model the error is about (OpenAI's `param`). */
  param?: string | null;
  /** Overrides the code's default `retry-after` seconds. */
  retryAfter?: number;
  cause?: unknown;
}

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: ErrorType;
  readonly param: string | null;
  readonly retryAfter?: number;
  readonly noRetry: boolean;

  constructor(code: ErrorCode, message: string, options: ApiErrorOptions = {}) {
    super(message, { cause: options.cause });
    const def: ErrorDef = ERROR_CODES[code];
    this.name = 'ApiError';
    this.code = code;
    this.status = def.status;
    this.type = def.type;
    this.param = options.param ?? null;
    this.retryAfter = options.retryAfter ?? def.retryAfter;
    this.noRetry = def.noRetry ?? false;
  }

  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError;
}
