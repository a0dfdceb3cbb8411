// The renderer's only channels into the app: typed backend calls (validated here against the
// contract), the open dialog, and the backend's events pushed back to the window.
import { BrowserWindow, dialog, ipcMain, type IpcMainInvokeEvent } from 'electron';
import type { BackendEvent } from '../api/types';
import type { CallOutcome } from '../api/bridge';
import { isAppUrl } from './assets';
import type { BackendHost } from './backendHost';
import { checkCall, errorBody } from './validation';

export const CHANNELS = { call: 'folio:call', openDialog: 'folio:open-dialog', event: 'folio:event' } as const;

function fromApp(event: IpcMainInvokeEvent): boolean {
  // Only the app's own top-level page may call.
  return event.senderFrame !== null && event.senderFrame.parent === null && isAppUrl(event.senderFrame.url);
}

export const OPEN_DIALOG_FILTERS = [
  { name: 'Documents', extensions: ['txt', 'md', 'markdown', 'pdf', 'epub', 'docx', 'html', 'htm'] },
  { name: 'All files', extensions: ['*'] },
];

export async function chooseDocuments(window: BrowserWindow | null): Promise<string[]> {
  const options: Electron.OpenDialogOptions = {
    title: 'Add to the library',
    buttonLabel: 'Add',
    // Files and folders in one dialog works on macOS only; elsewhere the dialog is for files
    // (folders are dropped on the window or chosen with File › Add Folder…).
    properties: process.platform === 'darwin' ? ['openFile', 'openDirectory', 'multiSelections'] : ['openFile', 'multiSelections'],
    filters: OPEN_DIALOG_FILTERS,
  };
  const result = window ? await dialog.showOpenDialog(window, options) : await dialog.showOpenDialog(options);
  return result.canceled ? [] : result.filePaths;
}

export function registerIpc(backend: BackendHost, window: () => BrowserWindow | null): void {
  ipcMain.handle(CHANNELS.call, async (event, method: unknown, params: unknown): Promise<CallOutcome<unknown>> => {
    if (!fromApp(event)) return { ok: false, error: { code: 'FORBIDDEN', message: 'calls are accepted from the app window only' } };
    const checked = checkCall(method, params);
    if (!checked.ok) return checked;
    try {
      return { ok: true, result: await backend.request(checked.method, checked.params) };
    } catch (error) {
      return { ok: false, error: errorBody(error) };
    }
  });
  ipcMain.handle(CHANNELS.openDialog, async (event): Promise<string[]> => {
    if (!fromApp(event)) return [];
    return chooseDocuments(BrowserWindow.fromWebContents(event.sender) ?? window());
  });
  backend.onEvent((event: BackendEvent) => {
    const win = window();
    if (win && !win.isDestroyed()) win.webContents.send(CHANNELS.event, event);
  });
}
