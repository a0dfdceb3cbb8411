// Turns anything thrown into a sentence a person can act on.
import { ClientError } from '../api/clientError';

const BY_CODE: Record<string, string> = {
  ENGINE_RESTARTED: 'The engine restarted while working on this. Try again in a moment.',
  DISCONNECTED: 'The connection to Folio was lost before this finished. It reconnects by itself; try again then.',
  UNAUTHORIZED: 'The Folio server did not accept this page\'s token. Open the address the server printed.',
  CLOSED: 'The backend is shutting down.',
};

export function describeError(error: unknown): string {
  if (error instanceof ClientError) {
    const fixed = BY_CODE[error.code];
    if (fixed) return fixed;
    return capitalize(error.message || error.code);
  }
  if (error instanceof Error) return capitalize(error.message || error.name);
  return capitalize(String(error));
}

export function isCancellation(error: unknown): boolean {
  return error instanceof ClientError && error.code === 'CANCELLED';
}

function capitalize(text: string): string {
  return text ? text[0].toUpperCase() + text.slice(1) : 'Something went wrong.';
}
