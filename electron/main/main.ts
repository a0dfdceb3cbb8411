// Entry of the desktop app: one instance, one window, the backend in a utility process.
// No business logic here: the window, the menu, dialogs, and messages routed to the backend.
import path from 'node:path';
import { app, BrowserWindow, dialog, Menu, nativeTheme, screen, utilityProcess } from 'electron';
import type { HostOptions } from '../api/host-protocol';
import { APP_URL } from './assets';
import { BackendHost, type HostProcess } from './backendHost';
import { loadDesktopSettings, saveDesktopSettings } from './desktopSettings';
import { registerIpc } from './ipc';
import { buildMenu } from './menu';
import { appRoot, backendHostPath, dataDir, defaultModelPath, preloadPath, rendererDir } from './paths';
import { applySecurityPolicy, registerAppScheme, serveRenderer } from './security';
import { DEFAULT_SIZE, loadWindowState, restoreBounds, saveWindowState } from './windowState';

app.setName('Folio');
// Chromium's own files (caches, window state) stay apart from the library.
app.setPath('userData', path.join(app.getPath('appData'), 'Folio', 'desktop'));

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  registerAppScheme();
  void start();
}

let mainWindow: BrowserWindow | null = null;

function hostOptions(modelPath: string): HostOptions {
  return { dataDir: dataDir(), modelPath };
}

function spawnHost(options: HostOptions): HostProcess {
  const child = utilityProcess.fork(backendHostPath(), [JSON.stringify(options)], { serviceName: 'Folio backend', stdio: 'inherit' });
  return child as unknown as HostProcess;
}

function createWindow(): BrowserWindow {
  const stateFile = path.join(app.getPath('userData'), 'window-state.json');
  const saved = loadWindowState(stateFile);
  const bounds = restoreBounds(saved?.bounds, screen.getAllDisplays().map((d) => d.workArea));
  const win = new BrowserWindow({
    ...(bounds ?? DEFAULT_SIZE),
    minWidth: 900,
    minHeight: 560,
    title: 'Folio',
    show: false,
    // The page's own background, so the window does not flash white in a dark theme.
    backgroundColor: nativeTheme.shouldUseDarkColors ? '#17181b' : '#f7f6f3',
    webPreferences: {
      preload: preloadPath(),
      contextIsolation: true,
      nodeIntegration: false,
      sandbox: true,
      webSecurity: true,
      spellcheck: false,
      devTools: !app.isPackaged,
    },
  });
  if (saved?.maximized) win.maximize();
  win.once('ready-to-show', () => win.show());
  const remember = () => {
    if (!win.isDestroyed()) saveWindowState(stateFile, { bounds: win.getNormalBounds(), maximized: win.isMaximized() });
  };
  let timer: NodeJS.Timeout | undefined;
  const rememberSoon = () => {
    clearTimeout(timer);
    timer = setTimeout(remember, 500);
  };
  win.on('resize', rememberSoon);
  win.on('move', rememberSoon);
  win.on('close', remember);
  win.on('closed', () => {
    if (mainWindow === win) mainWindow = null;
  });
  void win.loadURL(APP_URL);
  return win;
}

async function start(): Promise<void> {
  await app.whenReady();
  const root = appRoot();
  const settingsFile = path.join(app.getPath('userData'), 'desktop-settings.json');
  const settings = loadDesktopSettings(settingsFile);
  const modelPath = process.env.FOLIO_MODEL ? path.resolve(process.env.FOLIO_MODEL) : settings.modelPath ?? defaultModelPath(root);

  applySecurityPolicy();
  serveRenderer(rendererDir(root));
  const backend = new BackendHost(spawnHost, hostOptions(modelPath));
  registerIpc(backend, () => mainWindow);
  void backend.start();

  Menu.setApplicationMenu(buildMenu({
    dataDir: dataDir(),
    window: () => mainWindow,
    async addPaths(paths) {
      if (!paths.length) return;
      try {
        await backend.request('documents.add', { paths });
      } catch (error) {
        dialog.showErrorBox('Folio could not add these', error instanceof Error ? error.message : String(error));
      }
    },
    async chooseModel(file) {
      saveDesktopSettings(settingsFile, { ...settings, modelPath: file });
      settings.modelPath = file;
      await backend.restart(hostOptions(file));
    },
  }));

  mainWindow = createWindow();
  app.on('second-instance', () => {
    if (!mainWindow) mainWindow = createWindow();
    if (mainWindow.isMinimized()) mainWindow.restore();
    mainWindow.focus();
  });
  app.on('activate', () => {
    if (!mainWindow) mainWindow = createWindow();
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  let stopped = false;
  app.on('before-quit', (event) => {
    if (stopped) return;
    // Let the backend finish its current step and save before the app goes.
    event.preventDefault();
    stopped = true;
    void backend.stop().finally(() => app.quit());
  });
}
