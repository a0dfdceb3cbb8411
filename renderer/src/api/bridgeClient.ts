// Transport of the desktop app: the preload's `window.folio` bridge over Electron IPC.
import type { Method, RequestParams, ResultTypes } from '../../../electron/api/requests';
import type { FolioBridge } from '../../../electron/api/bridge';
import type { FolioClient } from './client';
import { ClientError } from './clientError';

export function createBridgeClient(bridge: FolioBridge): FolioClient {
  async function call<M extends Method>(method: M, params: RequestParams<M>): Promise<ResultTypes[M]> {
    const outcome = await bridge.call(method, params);
    if (!outcome.ok) throw new ClientError(outcome.error.code, outcome.error.message);
    return outcome.result;
  }
  return {
    kind: 'desktop',
    call,
    onEvent: (listener) => bridge.onEvent(listener),
    onConnection: () => () => undefined,
    connection: 'open',
    acceptsFolders: true,
    async addFiles(files) {
      const paths = files.map((f) => bridge.pathForFile(f)).filter((p) => p.length > 0);
      if (!paths.length) throw new ClientError('NO_PATH', 'These items have no location on this computer and cannot be added.');
      return call('documents.add', { paths });
    },
    async pickFiles() {
      const paths = await bridge.openDialog();
      return paths.length ? call('documents.add', { paths }) : [];
    },
  };
}
