import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assetPath, contentType, isAppUrl } from './assets';
import { dataDir, unpackedPath } from './paths';
import { checkCall } from './validation';
import { loadWindowState, restoreBounds, saveWindowState } from './windowState';

describe('IPC payloads', () => {
  it('accept a known method with a valid payload', () => {
    expect(checkCall('documents.get', { docId: 'abc' })).toEqual({ ok: true, method: 'documents.get', params: { docId: 'abc' } });
  });

  it('refuse unknown methods, bad payloads and extra fields', () => {
    expect(checkCall('fs.readFile', {})).toMatchObject({ ok: false, error: { code: 'UNKNOWN_METHOD' } });
    expect(checkCall(42, {})).toMatchObject({ ok: false, error: { code: 'UNKNOWN_METHOD' } });
    expect(checkCall('documents.get', { docId: '../etc' })).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(checkCall('documents.list', { extra: 1 })).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(checkCall('documents.text', { docId: 'a', charStart: 10, charEnd: 5 })).toMatchObject({ ok: false });
  });

  it('come only from the app page', () => {
    expect(isAppUrl('folio://app/index.html')).toBe(true);
    expect(isAppUrl('folio://evil/index.html')).toBe(false);
    expect(isAppUrl('https://example.com/')).toBe(false);
    expect(isAppUrl('file:///etc/passwd')).toBe(false);
    expect(isAppUrl(undefined)).toBe(false);
  });
});

describe('renderer files', () => {
  const root = path.resolve('/srv/renderer');
  it('map app URLs into the renderer folder', () => {
    expect(assetPath(root, 'folio://app/')).toBe(path.join(root, 'index.html'));
    expect(assetPath(root, 'folio://app/assets/index-1.js')).toBe(path.join(root, 'assets', 'index-1.js'));
    expect(contentType('x.js')).toBe('text/javascript; charset=utf-8');
  });

  it('never leave it', () => {
    expect(assetPath(root, 'folio://app/../../etc/passwd')).toBe(path.join(root, 'etc', 'passwd'));
    expect(assetPath(root, 'folio://app/%2e%2e/%2e%2e/etc/passwd')).toBe(path.join(root, 'etc', 'passwd'));
    expect(assetPath(root, 'folio://other/index.html')).toBeNull();
    expect(assetPath(root, 'https://app/index.html')).toBeNull();
  });
});

describe('window bounds', () => {
  const screen = { x: 0, y: 0, width: 1920, height: 1040 };
  it('come back where they were when that is still on a display', () => {
    expect(restoreBounds({ x: 100, y: 50, width: 1200, height: 800 }, [screen])).toEqual({ x: 100, y: 50, width: 1200, height: 800 });
  });

  it('are dropped when the display they were on is gone, and shrunk to fit', () => {
    expect(restoreBounds({ x: 2500, y: 0, width: 1200, height: 800 }, [screen])).toBeUndefined();
    expect(restoreBounds({ x: 0, y: 0, width: 3000, height: 2000 }, [screen])).toEqual({ x: 0, y: 0, width: 1920, height: 1040 });
    expect(restoreBounds(undefined, [screen])).toBeUndefined();
    expect(restoreBounds({ x: Number.NaN, y: 0, width: 10, height: 10 }, [screen])).toBeUndefined();
  });

  it('are saved and loaded', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'folio-window-')), 'state.json');
    expect(loadWindowState(file)).toBeUndefined();
    saveWindowState(file, { bounds: { x: 1, y: 2, width: 3, height: 4 }, maximized: true });
    expect(loadWindowState(file)).toEqual({ bounds: { x: 1, y: 2, width: 3, height: 4 }, maximized: true });
  });
});

describe('paths', () => {
  it('point native code at unpacked files in a packaged app', () => {
    expect(unpackedPath('/opt/Folio/resources/app.asar/models/default/m.gguf')).toBe('/opt/Folio/resources/app.asar.unpacked/models/default/m.gguf');
    expect(unpackedPath('/home/me/folio/models/default/m.gguf')).toBe('/home/me/folio/models/default/m.gguf');
  });

  it('keep the library where the command line keeps it', () => {
    expect(dataDir({ FOLIO_DATA: '/x/lib' }, 'linux', '/home/me')).toBe(path.resolve('/x/lib'));
    expect(dataDir({}, 'linux', '/home/me')).toBe('/home/me/.local/share/folio');
    expect(dataDir({ XDG_DATA_HOME: '/xdg' }, 'linux', '/home/me')).toBe('/xdg/folio');
    expect(dataDir({}, 'darwin', '/Users/me')).toBe('/Users/me/Library/Application Support/Folio');
  });
});
