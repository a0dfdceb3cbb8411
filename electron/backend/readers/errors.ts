export type ReaderErrorCode =
  | 'NOT_FOUND'
  | 'EMPTY'
  | 'BINARY'
  | 'NO_TEXT'
  | 'ENCRYPTED'
  | 'CORRUPT'
  | 'TOO_LARGE'
  | 'UNSUPPORTED';

/** A document that cannot be read; the message is meant for the end user and names the file. */
export class ReaderError extends Error {
  constructor(
    public code: ReaderErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ReaderError';
  }
}

/** Throws a DOMException named 'AbortError' when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, name: string): void {
  if (signal?.aborted) throw new DOMException(`Reading ${name} was cancelled`, 'AbortError');
}

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}

/** Human-readable size for messages: "1.5 MB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}
