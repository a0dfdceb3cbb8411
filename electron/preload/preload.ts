// Runs in the sandboxed window before the page: exposes `window.folio` (the typed bridge of
// bridge.ts) and nothing else. Sandboxed preloads can load only Electron's renderer modules,
// so this file imports no other file at run time.
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import type { Method, RequestParams, ResultTypes } from '../api/requests';
import type { BackendEvent } from '../api/types';
import type { CallOutcome, FolioBridge } from '../api/bridge';

const bridge: FolioBridge = {
  version: 1,
  call<M extends Method>(method: M, params: RequestParams<M>): Promise<CallOutcome<ResultTypes[M]>> {
    return ipcRenderer.invoke('folio:call', method, params) as Promise<CallOutcome<ResultTypes[M]>>;
  },
  onEvent(listener: (event: BackendEvent) => void): () => void {
    // The page sees the event only, never Electron's IPC objects.
    const relay = (_event: IpcRendererEvent, payload: BackendEvent) => listener(payload);
    ipcRenderer.on('folio:event', relay);
    return () => {
      ipcRenderer.removeListener('folio:event', relay);
    };
  },
  openDialog(): Promise<string[]> {
    return ipcRenderer.invoke('folio:open-dialog') as Promise<string[]>;
  },
  pathForFile(file: File): string {
    try {
      return webUtils.getPathForFile(file);
    } catch {
      return '';
    }
  },
};

contextBridge.exposeInMainWorld('folio', bridge);
