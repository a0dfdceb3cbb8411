// File writes that survive a crash: readers see either the old file or the new one, never half.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Writes to a temporary file in the same directory, fsyncs it and renames it over `filePath`. */
export function atomicWriteFile(filePath: string, data: string | Uint8Array): void {
  const dir = path.dirname(filePath);
  fs.mkdirSync(dir, { recursive: true });
  // Same directory, so the rename never crosses file systems.
  const tmp = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | null = fs.openSync(tmp, 'w');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, filePath);
  } catch (err) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  syncDirectory(dir);
}

/** Makes a rename durable; directories cannot be opened for sync on every platform, so failure is ignored. */
function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows and some file systems refuse; the rename itself is still atomic there.
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}
