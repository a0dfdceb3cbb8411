// Transport of server mode: requests and pushed events over one WebSocket (/api/events), file
// uploads over HTTP (/api/upload). The socket reconnects by itself; requests made while it is
// down wait for it, and those in flight when it drops fail with a readable error.
import type { Method, RequestParams, ResultTypes } from '../../../electron/api/requests';
import type { BackendEvent, DocumentInfo } from '../../../electron/api/types';
import type { ConnectionState, FolioClient } from './client';
import { ClientError } from './clientError';

export interface ServerClientOptions {
  origin: string;                  // http://127.0.0.1:PORT
  token: string;
  WebSocketImpl?: typeof WebSocket;
  fetchImpl?: typeof fetch;
  reconnectDelayMs?: (attempt: number) => number;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

type Incoming =
  | { event: BackendEvent }
  | { id: number; result?: unknown; error?: { code: string; message: string } };

const defaultDelay = (attempt: number) => Math.min(10_000, 300 * 2 ** attempt);

export function createServerClient(options: ServerClientOptions): FolioClient {
  const WS = options.WebSocketImpl ?? WebSocket;
  const doFetch = options.fetchImpl ?? ((...args: Parameters<typeof fetch>) => fetch(...args));
  const delay = options.reconnectDelayMs ?? defaultDelay;
  const eventListeners = new Set<(event: BackendEvent) => void>();
  const connectionListeners = new Set<(state: ConnectionState) => void>();
  const pending = new Map<number, Pending>();
  const outbox: string[] = [];
  let socket: WebSocket | null = null;
  let state: ConnectionState = 'connecting';
  let nextId = 1;
  let attempt = 0;

  const setState = (next: ConnectionState) => {
    if (next === state) return;
    state = next;
    for (const listener of connectionListeners) listener(next);
  };

  function onMessage(raw: string): void {
    let message: Incoming;
    try {
      message = JSON.parse(raw) as Incoming;
    } catch {
      return;
    }
    if ('event' in message) {
      for (const listener of eventListeners) listener(message.event);
      return;
    }
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.error) waiter.reject(new ClientError(message.error.code, message.error.message));
    else waiter.resolve(message.result);
  }

  /** After a refused or dropped socket: is the token wrong (no point retrying) or the server away? */
  async function tokenRefused(): Promise<boolean> {
    try {
      const res = await doFetch(`${options.origin}/api/call/engine.status`, {
        method: 'POST', headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json' }, body: '{}',
      });
      return res.status === 401;
    } catch {
      return false;
    }
  }

  function connect(): void {
    const url = `${options.origin.replace(/^http/, 'ws')}/api/events?token=${encodeURIComponent(options.token)}`;
    const ws = new WS(url);
    socket = ws;
    ws.onopen = () => {
      attempt = 0;
      setState('open');
      for (const message of outbox.splice(0)) ws.send(message);
    };
    ws.onmessage = (e: MessageEvent) => onMessage(String(e.data));
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      for (const waiter of pending.values()) {
        waiter.reject(new ClientError('DISCONNECTED', 'The connection to the Folio server was lost before the answer came.'));
      }
      pending.clear();
      void tokenRefused().then((refused) => {
        if (refused) {
          setState('unauthorized');
          return;
        }
        setState('closed');
        setTimeout(() => {
          setState('connecting');
          connect();
        }, delay(attempt++));
      });
    };
  }

  function call<M extends Method>(method: M, params: RequestParams<M>): Promise<ResultTypes[M]> {
    if (state === 'unauthorized') {
      return Promise.reject(new ClientError('UNAUTHORIZED', 'The Folio server did not accept this page\'s token.'));
    }
    const id = nextId++;
    const message = JSON.stringify({ id, method, params });
    return new Promise<ResultTypes[M]>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      if (socket && socket.readyState === WS.OPEN) socket.send(message);
      else outbox.push(message);
    });
  }

  async function upload(file: File): Promise<DocumentInfo[]> {
    const res = await doFetch(`${options.origin}/api/upload?name=${encodeURIComponent(file.name)}`, {
      method: 'POST', headers: { authorization: `Bearer ${options.token}` }, body: file,
    });
    let body: { result?: DocumentInfo[]; error?: { code: string; message: string } } = {};
    try {
      body = await res.json();
    } catch {
      // A body that is not JSON: report the status below.
    }
    if (!res.ok || !body.result) {
      throw new ClientError(body.error?.code ?? `HTTP_${res.status}`, `${file.name}: ${body.error?.message ?? `upload failed (HTTP ${res.status})`}`);
    }
    return body.result;
  }

  connect();
  return {
    kind: 'server',
    call,
    onEvent(listener) {
      eventListeners.add(listener);
      return () => eventListeners.delete(listener);
    },
    onConnection(listener) {
      connectionListeners.add(listener);
      return () => connectionListeners.delete(listener);
    },
    get connection() {
      return state;
    },
    acceptsFolders: false,
    async addFiles(files) {
      const added: DocumentInfo[] = [];
      for (const file of files) added.push(...(await upload(file)));
      return added;
    },
    pickFiles: null,
  };
}
