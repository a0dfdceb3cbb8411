// The line at the bottom: connection, engine state, model and backend, memory, the job queue.
import { useDocuments } from '../stores/documents';
import { useEngine } from '../stores/engine';
import { client } from '../api/current';
import { formatBytes } from '../lib/format';

const ENGINE_LABELS = { starting: 'Starting', ready: 'Ready', busy: 'Working', restarting: 'Restarting', error: 'Stopped' } as const;
const CONNECTION_LABELS = { connecting: 'Connecting…', open: 'Connected', closed: 'Disconnected, retrying…', unauthorized: 'Token refused' } as const;

export function StatusBar() {
  const status = useEngine((s) => s.status);
  const connection = useEngine((s) => s.connection);
  const docs = useDocuments((s) => s.docs);
  const active = status?.activeJob ? docs[status.activeJob]?.title ?? null : null;
  const state = connection !== 'open' ? 'offline' : status?.state ?? 'starting';
  return (
    <footer className="status-bar" aria-label="Status">
      <span className={`dot ${state}`} aria-hidden="true" />
      <span data-testid="engine-state">
        Engine: {connection !== 'open' ? CONNECTION_LABELS[connection] : status ? ENGINE_LABELS[status.state] : 'Starting'}
      </span>
      {status?.message && <span className="status-message" title={status.message}>{status.message}</span>}
      {status?.model && (
        <>
          <span title={status.model.path}>Model: {status.model.name}</span>
          <span>Backend: {status.model.backend.toUpperCase()}, {status.model.threads} {status.model.threads === 1 ? 'thread' : 'threads'}</span>
        </>
      )}
      {status && status.rssBytes > 0 && <span>Memory: {formatBytes(status.rssBytes)}</span>}
      {active && <span>Reading: {active}{status && status.queue.length ? ` (+${status.queue.length} waiting)` : ''}</span>}
      <span className="spacer" />
      {client().kind === 'server' && <span className="connection">Server: {CONNECTION_LABELS[connection]}</span>}
    </footer>
  );
}
