// Where the library lives and which model the backend loads, from flags, environment and platform.
import os from 'node:os';
import path from 'node:path';
import { defaultModelPath } from './engine/engine';

/** The platform's app-data folder for Folio (XDG on Linux, Application Support on macOS, AppData on Windows). */
export function platformDataDir(): string {
  const home = os.homedir();
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'Folio');
  if (process.platform === 'win32') return path.join(process.env.APPDATA || path.join(home, 'AppData', 'Roaming'), 'Folio');
  return path.join(process.env.XDG_DATA_HOME || path.join(home, '.local', 'share'), 'folio');
}

export function resolveDataDir(flag?: string): string {
  return path.resolve(flag || process.env.FOLIO_DATA || platformDataDir());
}

export function resolveModelPath(flag?: string): string {
  return path.resolve(flag || process.env.FOLIO_MODEL || defaultModelPath());
}
