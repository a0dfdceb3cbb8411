// The one interface the UI talks to. Two transports implement it: the desktop app's preload
// bridge and the server's WebSocket/HTTP API; `createClient` picks one at start-up.
import type { Method, RequestParams, ResultTypes } from '../../../electron/api/requests';
import type { BackendEvent, DocumentInfo } from '../../../electron/api/types';
import type { FolioBridge } from '../../../electron/api/bridge';
import { createBridgeClient } from './bridgeClient';
import { createServerClient } from './serverClient';
import { ClientError } from './clientError';
import { readToken } from './token';

export { ClientError };

export type ConnectionState = 'connecting' | 'open' | 'closed' | 'unauthorized';

export interface FolioClient {
  readonly kind: 'desktop' | 'server';
  call<M extends Method>(method: M, params: RequestParams<M>): Promise<ResultTypes[M]>;
  onEvent(listener: (event: BackendEvent) => void): () => void;
  onConnection(listener: (state: ConnectionState) => void): () => void;
  readonly connection: ConnectionState;
  /** Adds dropped or chosen files to the library (uploaded in server mode, by path on the desktop). */
  addFiles(files: readonly File[]): Promise<DocumentInfo[]>;
  /** The system's open dialog where there is one; null where the page uses a file input. */
  readonly pickFiles: (() => Promise<DocumentInfo[]>) | null;
  /** Whether dropped folders can be added (they need a path on this computer). */
  readonly acceptsFolders: boolean;
}

declare global {
  interface Window {
    folio?: FolioBridge;
  }
}

export function createClient(win: Window = window): FolioClient {
  if (win.folio) return createBridgeClient(win.folio);
  const token = readToken(win);
  if (!token) {
    throw new ClientError('NO_TOKEN', 'This page needs the access token the Folio server printed when it started. ' +
      'Open the full address it showed (it ends in #token=...).');
  }
  return createServerClient({ origin: win.location.origin, token });
}
