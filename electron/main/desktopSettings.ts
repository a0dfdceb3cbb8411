// Choices that belong to the desktop app rather than the library: which model file to load.
import fs from 'node:fs';
import path from 'node:path';

export interface DesktopSettings {
  modelPath?: string;
}

export function loadDesktopSettings(file: string): DesktopSettings {
  try {
    const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as DesktopSettings;
    return typeof raw.modelPath === 'string' ? { modelPath: raw.modelPath } : {};
  } catch {
    return {};
  }
}

export function saveDesktopSettings(file: string, settings: DesktopSettings): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(settings, null, 2));
  fs.renameSync(tmp, file);
}
