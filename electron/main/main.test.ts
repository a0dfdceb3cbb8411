// The main process wired together, with Electron's API replaced by a stand-in (no Electron
// binary runs here) and the real backend host forked as a child process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const stub = vi.hoisted(() => ({
  handlers: {} as Record<string, (event: unknown, ...args: unknown[]) => Promise<unknown>>,
  sent: [] as [string, { type: string; status?: { state: string; message?: string } }][],
  windows: [] as { url?: string; options: { webPreferences: Record<string, unknown> } }[],
  protocol: null as null | ((request: { url: string }) => Promise<Response>),
  schemes: [] as unknown[],
  children: [] as { kill(): boolean }[],
}));

vi.mock('electron', async () => {
  // The factory runs before this file's imports: it loads what it needs itself.
  const { EventEmitter } = await import('node:events');
  const { fork } = await import('node:child_process');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  class BrowserWindow extends EventEmitter {
    url?: string;
    webContents = { send: (channel: string, payload: never) => stub.sent.push([channel, payload]) };
    constructor(readonly options: { webPreferences: Record<string, unknown> }) {
      super();
      stub.windows.push(this);
    }
    loadURL(url: string) {
      this.url = url;
      return Promise.resolve();
    }
    maximize() {}
    isDestroyed() { return false; }
    getNormalBounds() { return { x: 0, y: 0, width: 1360, height: 860 }; }
    isMaximized() { return false; }
    static fromWebContents() { return stub.windows[0]; }
  }
  const paths: Record<string, string> = { appData: fs.mkdtempSync(path.join(os.tmpdir(), 'folio-main-')) };
  const app = Object.assign(new EventEmitter(), {
    isPackaged: false,
    setName() {},
    setPath(key: string, value: string) { paths[key] = value; },
    getPath(key: string) { return paths[key]; },
    requestSingleInstanceLock: () => true,
    whenReady: () => Promise.resolve(),
    quit() {},
  });
  return {
    app,
    BrowserWindow,
    protocol: {
      registerSchemesAsPrivileged(schemes: unknown[]) { stub.schemes = schemes; },
      handle(_scheme: string, handler: (request: { url: string }) => Promise<Response>) { stub.protocol = handler; },
    },
    session: { defaultSession: { setPermissionRequestHandler() {}, setPermissionCheckHandler() {}, webRequest: { onBeforeRequest() {} } } },
    screen: { getAllDisplays: () => [{ workArea: { x: 0, y: 0, width: 1920, height: 1080 } }] },
    nativeTheme: { shouldUseDarkColors: false },
    utilityProcess: {
      fork(modulePath: string, args: string[]) {
        const child = fork(modulePath, args, { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
        stub.children.push(child);
        return Object.assign(child, { postMessage: (message: unknown) => child.send(message as never) });
      },
    },
    Menu: { buildFromTemplate: (template: unknown) => ({ template }), setApplicationMenu() {} },
    dialog: { showOpenDialog: async () => ({ canceled: true, filePaths: [] }), showErrorBox() {} },
    ipcMain: { handle(channel: string, handler: (event: unknown, ...args: unknown[]) => Promise<unknown>) { stub.handlers[channel] = handler; } },
    shell: { openPath: async () => '', openExternal: async () => undefined },
  };
});

const root = path.resolve(__dirname, '..', '..');
const hostBuilt = fs.existsSync(path.join(root, 'out', 'electron', 'backend', 'host', 'main.js'));
const fromApp = { senderFrame: { url: 'folio://app/index.html', parent: null }, sender: {} };

afterAll(() => {
  for (const child of stub.children) child.kill();
});

describe.skipIf(!hostBuilt)('the main process', () => {
  it('starts', async () => {
    process.env.FOLIO_DATA = fs.mkdtempSync(path.join(os.tmpdir(), 'folio-main-data-'));
    process.env.FOLIO_MODEL = path.join(os.tmpdir(), 'no-such-model.gguf');
    await import('./main');
    await vi.waitFor(() => expect(stub.windows).toHaveLength(1));
  });

  it('opens one sandboxed, isolated window on the app scheme', () => {
    const [win] = stub.windows;
    expect(win.url).toBe('folio://app/index.html');
    expect(win.options.webPreferences).toMatchObject({ contextIsolation: true, nodeIntegration: false, sandbox: true, webSecurity: true });
    expect(String(win.options.webPreferences.preload)).toMatch(/out[/\\]electron[/\\]preload[/\\]preload\.js$/);
    expect(stub.schemes).toEqual([{ scheme: 'folio', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);
  });

  it('serves the renderer with a strict Content Security Policy, and nothing outside it', async () => {
    const index = await stub.protocol!({ url: 'folio://app/index.html' });
    if (fs.existsSync(path.join(root, 'out', 'renderer', 'index.html'))) {
      expect(index.status).toBe(200);
      expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    }
    expect((await stub.protocol!({ url: 'folio://app/%2e%2e/package.json' })).status).toBe(404);
    expect((await stub.protocol!({ url: 'folio://elsewhere/index.html' })).status).toBe(404);
  });

  it('validates IPC payloads and callers before the backend sees them', async () => {
    const call = stub.handlers['folio:call'];
    expect(await call({ senderFrame: { url: 'https://example.com/', parent: null } }, 'engine.status', {}))
      .toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await call(fromApp, 'documents.remove', { docId: 'a b' })).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(await call(fromApp, 'shell.exec', {})).toMatchObject({ ok: false, error: { code: 'UNKNOWN_METHOD' } });
  });

  it('reports a backend that cannot start as a readable error, in answers and in an event', async () => {
    const call = stub.handlers['folio:call'];
    await vi.waitFor(async () => {
      const outcome = await call(fromApp, 'engine.status', {});
      expect(outcome).toMatchObject({ ok: false, error: { code: 'ENGINE_FAILED', message: expect.stringContaining('model file not found') } });
    }, { timeout: 20_000, interval: 200 });
    const engineEvents = stub.sent.filter(([channel, event]) => channel === 'folio:event' && event.type === 'engine');
    expect(engineEvents.at(-1)?.[1].status).toMatchObject({ state: 'error' });
    expect(stub.children).toHaveLength(1);
  });
});
