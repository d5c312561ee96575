import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import FindMyWay from 'find-my-way';
import { ApiError, type ErrorCode } from '../errors.ts';

const KEYWORD_CODES: Record<string, ErrorCode> = {
  required: 'missing_required_parameter',
  type: 'invalid_type',
  minimum: 'parameter_out_of_range',
  maximum: 'parameter_out_of_range',
  exclusiveMinimum: 'parameter_out_of_range',
  exclusiveMaximum: 'parameter_out_of_range',
  minItems: 'invalid_value',
  maxItems: 'invalid_value',
  minLength: 'invalid_value',
  maxLength: 'invalid_value',
  enum: 'invalid_value',
  const: 'invalid_value',
  anyOf: 'invalid_value',
  pattern: 'invalid_value',
  additionalProperties: 'unknown_parameter',
};

interface AjvError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/**
 * The error to report from an ajv failure. A union (anyOf) reports one error per branch plus
 * its own: the deepest path is the most specific (of equal ones, the last element); there, an
 * error from a branch whose type the value has (a bound, a missing property) says more than
 * "must be <type>"; a nullable
 * field's `null` branch and the anyOf itself say least. Type errors alone are merged
 * ("must be integer or string"), as are `const` ones ("must be one of [...]").
 */
function pick(errors: AjvError[]): AjvError {
  const depth = Math.max(...errors.map((e) => e.instancePath.length));
  // Branches can fail at different elements of one array (`[12, [13]]`: the token branch at
  // [1], the several-prompts branch at [0]); the last one breaks the shape the earlier
  // elements set, and its branches' errors are the ones to merge.
  const path = errors.filter((e) => e.instancePath.length === depth).map((e) => e.instancePath)
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1)!;
  const here = errors.filter((e) => e.instancePath === path);
  const branches = here.filter((e) => e.keyword !== 'anyOf' && !(e.keyword === 'type' && e.params.type === 'null'));
  if (branches.length === 0) return here[0]!;
  const specific = branches.find((e) => e.keyword !== 'type' && e.keyword !== 'const');
  if (specific) return specific;
  const consts = branches.filter((e) => e.keyword === 'const');
  if (consts.length > 0) {
    return { ...consts[0]!, keyword: 'enum', params: { allowedValues: consts.map((e) => e.params.allowedValue) } };
  }
  const types = [...new Set(branches.map((e) => String(e.params.type)))];
  return { ...branches[0]!, message: `must be ${types.join(' or ')}` };
}

/** Turns an ajv validation failure into an ApiError naming the field in dotted form. */
export function fromValidation(errors: AjvError[], context: string | undefined): ApiError {
  const e = pick(errors);
  const segs = e.instancePath.split('/').filter(Boolean);
  if (e.keyword === 'required') segs.push(String(e.params.missingProperty));
  if (e.keyword === 'additionalProperties') segs.push(String(e.params.additionalProperty));
  const param = segs.map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`)).join('') || null;
  const where = context && context !== 'body' ? ` in ${context}` : '';
  let message: string;
  if (e.keyword === 'required') message = `missing required parameter '${param}'${where}`;
  else if (e.keyword === 'additionalProperties') message = `unknown parameter '${param}'${where}`;
  else if (e.keyword === 'enum') message = `'${param}'${where} must be one of ${JSON.stringify(e.params.allowedValues)}`;
  else message = param ? `'${param}'${where} ${e.message}` : `request ${context ?? 'body'} ${e.message}`;
  return new ApiError(KEYWORD_CODES[e.keyword] ?? 'invalid_request', message, { param });
}

function toApiError(err: FastifyError & { validation?: AjvError[]; validationContext?: string }): ApiError {
  if (err instanceof ApiError) return err;
  if (err.validation) return fromValidation(err.validation, err.validationContext);
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('body_too_large', `request body is larger than the server's limit: ${err.message}`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type', `unsupported Content-Type; send application/json`);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('invalid_request', 'Content-Length does not match the body');
  }
  // Empty and malformed JSON bodies are ApiErrors already (plugins/json-body.ts).
  if (err.statusCode === 404) return new ApiError('route_not_found', err.message);
  if (err.statusCode === 403) return new ApiError('forbidden', err.message);
  if (err.statusCode && err.statusCode < 500) return new ApiError('invalid_request', err.message);
  return new ApiError('internal_error', 'internal server error', { cause: err });
}

export function sendApiError(reply: FastifyReply, e: ApiError): FastifyReply {
  if (e.retryAfter !== undefined && e.status >= 500) reply.header('retry-after', String(e.retryAfter));
  if (e.noRetry) reply.header('x-should-retry', 'false');
  return reply.code(e.status).type('application/json').send(e.toJSON());
}

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (headers over 16 KiB, a
 * malformed request line or headers): answered on the raw socket, still in the OpenAI
 * envelope, and the connection closed as Node's default handler does.
 */
export function clientErrorResponse(err: NodeJS.ErrnoException): string {
  const e = err.code === 'HPE_HEADER_OVERFLOW'
    ? new ApiError('headers_too_large', 'the request headers are larger than the server accepts (16 KiB)')
    : new ApiError('invalid_request', `the HTTP request is malformed: ${err.message}`);
  const body = JSON.stringify(e.toJSON());
  return `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** URL-level failures Fastify answers before routing (`/v1/%`): the envelope too. */
export function frameworkError(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  void sendApiError(reply, new ApiError('invalid_request', err.code === 'FST_ERR_BAD_URL' ? `the URL is not valid: ${err.message}` : err.message));
}

const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const byConvention = (a: string, b: string) =>
  ((METHOD_ORDER.indexOf(a) + 1 || 99) - (METHOD_ORDER.indexOf(b) + 1 || 99)) || a.localeCompare(b);

/**
 * Which methods a URL path accepts, so that a wrong method is a 405 naming them instead of a
 * 404. A copy of the route table in find-my-way (Fastify's own router) with Fastify's matching
 * options rather than `app.findRoute`: that one answers a stand-in handler for every method on
 * a URL Fastify rejects (bad percent-encoding, a parameter over maxParamLength), and cannot tell
 * the CORS preflight catch-all (`OPTIONS *`) from a route, which would make every path exist.
 */
class MethodTable {
  private readonly router: FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;
  private readonly methods = new Set<string>();

  constructor(config: FastifyInstance['initialConfig']) {
    // Top-level keys are Fastify's deprecated spelling; routerOptions wins, as in Fastify.
    const o = { ...config, ...config.routerOptions };
    const options = {
      caseSensitive: o.caseSensitive,
      ignoreTrailingSlash: o.ignoreTrailingSlash,
      ignoreDuplicateSlashes: o.ignoreDuplicateSlashes,
      maxParamLength: o.maxParamLength,
      // Read by find-my-way (Fastify passes it too) though missing from its type.
      useSemicolonDelimiter: o.useSemicolonDelimiter,
      allowUnsafeRegex: o.allowUnsafeRegex,
    };
    this.router = FindMyWay(options);
  }

  add(method: string | string[], url: string, prefix?: string): void {
    // A catch-all (@fastify/cors's OPTIONS *) says nothing about which paths exist.
    if (url === '*' || url === '/*') return;
    // A plugin's root route answers at `/docs` and `/docs/` (Fastify's prefixTrailingSlash
    // 'both'), but onRoute reports only the first.
    if (prefix && url === prefix) this.add(method, `${url}/`);
    // `/v1/models/:folder/:file` serves raw-slash ids; a folder holding a slash was an
    // encoded id followed by a path segment, i.e. some other per-model route.
    const rawSlashId = url.includes('/:folder/:file');
    for (const m of [method].flat()) {
      try {
        this.router.on(m as FindMyWay.HTTPMethod, url, () => {}, { rawSlashId });
        this.methods.add(m);
      } catch {
        // The same method and path again under another constraint: already known.
      }
    }
  }

  /** The methods `url` matches, in the usual order; none when no route has its path. */
  allowed(url: string): string[] {
    return [...this.methods].filter((m) => {
      const found = this.router.find(m as FindMyWay.HTTPMethod, url);
      return found !== null && !isEncodedIdWithSuffix(found);
    }).sort(byConvention);
  }
}

function isEncodedIdWithSuffix(found: { params: Record<string, string | undefined>; store: unknown }): boolean {
  return (found.store as { rawSlashId?: boolean } | null)?.rawSlashId === true && (found.params.folder ?? '').includes('/');
}

/** One place where every failure becomes the OpenAI envelope with a stable code. */
export default fp(
  async function errorHandler(app: FastifyInstance) {
    const table = new MethodTable(app.initialConfig);
    app.addHook('onRoute', (route) => table.add(route.method, route.url, route.prefix));
    app.setErrorHandler((err: FastifyError, request, reply) => {
      const e = toApiError(err);
      if (e.status >= 500 && e.code === 'internal_error') request.log.error({ err }, 'unhandled error');
      else if (e.status >= 500) request.log.warn({ code: e.code, msg: e.message }, 'request failed');
      return sendApiError(reply, e);
    });
    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?')[0];
      const methods = table.allowed(request.url);
      if (methods.length === 0 || methods.includes(request.method)) {
        return sendApiError(reply, new ApiError('route_not_found', `no route ${request.method} ${path}`));
      }
      // OPTIONS reaches here only with CORS off (@fastify/cors answers every OPTIONS itself);
      // it is the standard way to ask what the 405 lists, so it answers rather than failing.
      const allow = [...new Set([...methods, 'OPTIONS'])].join(', ');
      reply.header('allow', allow);
      if (request.method === 'OPTIONS') return reply.code(204).send();
      return sendApiError(reply, new ApiError('method_not_allowed', `method ${request.method} is not allowed on ${path}; it accepts ${allow}`));
    });
  },
  { name: 'error-handler' },
);
