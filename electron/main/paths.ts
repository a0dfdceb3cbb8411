// Where the desktop app finds its parts (renderer, preload, backend host, default model) and
// keeps its data, in a checkout and in a packaged app (where files that native code opens
// directly, like the model, live unpacked beside app.asar).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The folder holding package.json and native/index.js (the checkout, or app.asar when packaged). */
export function appRoot(start = __dirname): string {
  let dir = start;
  for (let i = 0; i < 8; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'native', 'index.js'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find the app root (package.json with native/index.js) above ${start}`);
}

/** A path inside the app as native code must open it: app.asar/x -> app.asar.unpacked/x. */
export function unpackedPath(file: string): string {
  return file.replace(/([/\\])app\.asar([/\\])/, '$1app.asar.unpacked$2');
}

export function rendererDir(root = appRoot()): string {
  return path.join(root, 'out', 'renderer');
}

export function preloadPath(root = appRoot()): string {
  return path.join(root, 'out', 'electron', 'preload', 'preload.js');
}

export function backendHostPath(root = appRoot()): string {
  return path.join(root, 'out', 'electron', 'backend', 'host', 'main.js');
}

export function defaultModelPath(root = appRoot()): string {
  return unpackedPath(path.join(root, 'models', 'default', 'folio-default.gguf'));
}

/** The library's folder: FOLIO_DATA, else the platform's app-data folder (the same one the CLI uses). */
export function dataDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform,
                        home = os.homedir()): string {
  if (env.FOLIO_DATA) return path.resolve(env.FOLIO_DATA);
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'Folio');
  if (platform === 'win32') return path.join(env.APPDATA || path.join(home, 'AppData', 'Roaming'), 'Folio');
  return path.join(env.XDG_DATA_HOME || path.join(home, '.local', 'share'), 'folio');
}
