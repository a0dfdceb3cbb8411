// The window's size and position, remembered between runs, and put back only where it still
// fits on one of the current displays.
import fs from 'node:fs';
import path from 'node:path';

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface WindowState {
  bounds: Rect;
  maximized: boolean;
}

export const DEFAULT_SIZE = { width: 1360, height: 860 };
const MIN_VISIBLE = 120;     // pixels of the window that must lie on a display

function overlap(a: Rect, b: Rect): { width: number; height: number } {
  return {
    width: Math.max(0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x)),
    height: Math.max(0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y)),
  };
}

/** Saved bounds if enough of them are on a display (shrunk to fit it), else none: the system places the window. */
export function restoreBounds(saved: Rect | undefined, workAreas: Rect[]): Rect | undefined {
  if (!saved || ![saved.x, saved.y, saved.width, saved.height].every(Number.isFinite)) return undefined;
  for (const area of workAreas) {
    const o = overlap(saved, area);
    if (o.width >= Math.min(MIN_VISIBLE, saved.width) && o.height >= Math.min(MIN_VISIBLE, saved.height)) {
      return {
        x: Math.round(saved.x),
        y: Math.round(saved.y),
        width: Math.round(Math.min(saved.width, area.width)),
        height: Math.round(Math.min(saved.height, area.height)),
      };
    }
  }
  return undefined;
}

export function loadWindowState(file: string): WindowState | undefined {
  try {
    const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<WindowState>;
    if (!raw.bounds || typeof raw.bounds !== 'object') return undefined;
    return { bounds: raw.bounds as Rect, maximized: raw.maximized === true };
  } catch {
    return undefined;
  }
}

export function saveWindowState(file: string, state: WindowState): void {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(state));
    fs.renameSync(tmp, file);
  } catch {
    // Not remembering the window is no reason to fail.
  }
}
