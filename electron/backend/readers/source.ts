import { promises as fs, type Stats } from 'node:fs';
import { basename, extname } from 'node:path';
import { ReaderError, formatBytes, throwIfAborted } from './errors';
import { DEFAULT_MAX_BYTES, type ReadOptions } from './types';

/** A regular file about to be read. */
export interface SourceFile {
  path: string;
  /** Base name, used in messages. */
  name: string;
  size: number;
}

function accessError(error: unknown, name: string): Error {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new ReaderError('NOT_FOUND', `${name} was not found`);
  if (code === 'EACCES' || code === 'EPERM') {
    return new ReaderError('NOT_FOUND', `Folio is not allowed to open ${name} (permission denied)`);
  }
  return error instanceof Error ? error : new Error(String(error));
}

export async function statPath(path: string): Promise<Stats> {
  try {
    return await fs.stat(path);
  } catch (error) {
    throw accessError(error, basename(path) || path);
  }
}

export function maxBytesOf(options: ReadOptions): number {
  return options.maxBytes ?? DEFAULT_MAX_BYTES;
}

export function checkSize(name: string, size: number, options: ReadOptions): void {
  const limit = maxBytesOf(options);
  if (size > limit) {
    throw new ReaderError(
      'TOO_LARGE',
      `${name} is ${formatBytes(size)}; Folio reads documents of up to ${formatBytes(limit)}`,
    );
  }
}

export async function readBytes(file: SourceFile, options: ReadOptions): Promise<Buffer> {
  throwIfAborted(options.signal, file.name);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file.path, { signal: options.signal });
  } catch (error) {
    throw accessError(error, file.name);
  }
  // The file may have grown since it was measured.
  checkSize(file.name, bytes.length, options);
  return bytes;
}

/** The first `length` bytes (fewer for a short file). */
export async function readHead(path: string, length: number): Promise<Buffer> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(path, 'r');
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } catch (error) {
    throw accessError(error, basename(path) || path);
  } finally {
    await handle?.close();
  }
}

/** "The Storm.pdf" => "The Storm". */
export function titleFromName(name: string): string {
  const ext = extname(name);
  const stem = ext && ext !== name ? name.slice(0, -ext.length) : name;
  return stem || name;
}
