// The application menu: adding documents and folders, choosing the model, the data folder, and
// the usual Edit, View and Window menus.
import { app, dialog, Menu, shell, type BrowserWindow, type MenuItemConstructorOptions } from 'electron';
import { chooseDocuments } from './ipc';

export interface MenuActions {
  addPaths(paths: string[]): Promise<void>;
  chooseModel(path: string): Promise<void>;
  dataDir: string;
  window(): BrowserWindow | null;
}

export function buildMenu(actions: MenuActions): Menu {
  const isMac = process.platform === 'darwin';
  const fileMenu: MenuItemConstructorOptions = {
    label: 'File',
    submenu: [
      {
        label: 'Open…',
        accelerator: 'CmdOrCtrl+O',
        click: async () => actions.addPaths(await chooseDocuments(actions.window())),
      },
      {
        label: 'Add Folder…',
        accelerator: 'CmdOrCtrl+Shift+O',
        click: async () => {
          const win = actions.window();
          const options: Electron.OpenDialogOptions = { title: 'Add a folder of code or documents', buttonLabel: 'Add', properties: ['openDirectory', 'multiSelections'] };
          const result = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
          if (!result.canceled) await actions.addPaths(result.filePaths);
        },
      },
      { type: 'separator' },
      {
        label: 'Choose Model…',
        click: async () => {
          const win = actions.window();
          const options: Electron.OpenDialogOptions = { title: 'Choose a MEGALODON model (GGUF)', buttonLabel: 'Use this model',
            properties: ['openFile'], filters: [{ name: 'GGUF models', extensions: ['gguf'] }] };
          const result = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
          if (!result.canceled && result.filePaths[0]) await actions.chooseModel(result.filePaths[0]);
        },
      },
      { label: 'Open Data Folder', click: () => void shell.openPath(actions.dataDir) },
      { type: 'separator' },
      isMac ? { role: 'close' } : { role: 'quit' },
    ],
  };
  const template: MenuItemConstructorOptions[] = [
    ...(isMac ? [{ role: 'appMenu' } as MenuItemConstructorOptions] : []),
    fileMenu,
    { role: 'editMenu' },
    {
      label: 'View',
      submenu: [
        { role: 'reload' },
        ...(app.isPackaged ? [] : [{ role: 'toggleDevTools' } as MenuItemConstructorOptions]),
        { type: 'separator' },
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
      ],
    },
    { role: 'windowMenu' },
  ];
  return Menu.buildFromTemplate(template);
}
