// A scriptable FolioClient for store and component tests.
import { vi } from 'vitest';
import type { Method, RequestParams, ResultTypes } from '../../../electron/api/requests';
import type { BackendEvent, DocumentInfo } from '../../../electron/api/types';
import type { ConnectionState, FolioClient } from '../api/client';
import { setClient } from '../api/current';

type Handler<M extends Method> = (params: RequestParams<M>) => ResultTypes[M] | Promise<ResultTypes[M]>;

export interface FakeClient extends FolioClient {
  handle<M extends Method>(method: M, handler: Handler<M>): void;
  emit(event: BackendEvent): void;
  calls: { method: Method; params: unknown }[];
}

export function installFakeClient(kind: FolioClient['kind'] = 'server'): FakeClient {
  const handlers = new Map<Method, Handler<Method>>();
  const listeners = new Set<(e: BackendEvent) => void>();
  const calls: FakeClient['calls'] = [];
  const fake: FakeClient = {
    kind,
    connection: 'open' as ConnectionState,
    calls,
    acceptsFolders: kind === 'desktop',
    pickFiles: null,
    handle(method, handler) {
      handlers.set(method, handler as Handler<Method>);
    },
    emit(event) {
      for (const l of listeners) l(event);
    },
    async call(method, params) {
      calls.push({ method, params });
      const handler = handlers.get(method);
      if (!handler) throw new Error(`no fake handler for ${method}`);
      return (await handler(params as never)) as never;
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onConnection: () => () => undefined,
    addFiles: vi.fn(async () => [] as DocumentInfo[]),
  };
  setClient(fake);
  return fake;
}

export function makeDoc(overrides: Partial<DocumentInfo> = {}): DocumentInfo {
  return {
    id: 'doc1', title: 'The Book', format: 'markdown', sourcePath: '/books/book.md', sourceBytes: 1000,
    charCount: 1000, tokenCount: 400, tokensIngested: 400, status: 'ready', error: null,
    modelFingerprint: 'abcdef0123', collectionId: null, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z',
    ...overrides,
  };
}
