// Checks what the renderer sends before it reaches the backend: a known method and a payload
// that passes the contract's schema. Anything else is refused with a readable error.
import { ApiError, isMethod, parseRequest, type Method } from '../api/requests';
import type { ApiErrorBody } from '../api/types';

export type CheckedCall = { ok: true; method: Method; params: unknown } | { ok: false; error: ApiErrorBody };

export function checkCall(method: unknown, params: unknown): CheckedCall {
  if (typeof method !== 'string' || !isMethod(method)) {
    return { ok: false, error: { code: 'UNKNOWN_METHOD', message: `unknown method ${String(method).slice(0, 80)}` } };
  }
  try {
    return { ok: true, method, params: parseRequest(method, params) };
  } catch (error) {
    return { ok: false, error: errorBody(error) };
  }
}

export function errorBody(error: unknown): ApiErrorBody {
  const code = error instanceof ApiError ? error.code : (error as { code?: unknown })?.code;
  return {
    code: typeof code === 'string' ? code : 'INTERNAL',
    message: error instanceof Error ? error.message : String(error),
  };
}
