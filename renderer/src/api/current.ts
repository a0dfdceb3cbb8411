// The client the stores use, set once at start-up (and by tests, to a fake).
import type { FolioClient } from './client';
import { ClientError } from './clientError';

let current: FolioClient | null = null;

export function setClient(client: FolioClient | null): void {
  current = client;
}

export function client(): FolioClient {
  if (!current) throw new ClientError('NO_CLIENT', 'Folio is not connected to its backend.');
  return current;
}
