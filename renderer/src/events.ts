// Routes backend events to the stores, and re-reads the library and the engine status whenever
// the connection (re)opens, since events sent while it was down are gone.
import type { BackendEvent } from '../../electron/api/types';
import type { FolioClient } from './api/client';
import { useChat } from './stores/chat';
import { useCollections } from './stores/collections';
import { useDocuments } from './stores/documents';
import { useEngine } from './stores/engine';
import { useProgress } from './stores/progress';
import { useSummaries } from './stores/summaries';

const STATUS_POLL_MS = 4000;

export function routeEvent(event: BackendEvent): void {
  switch (event.type) {
    case 'document': {
      const documents = useDocuments.getState();
      const added = !documents.docs[event.document.id];
      documents.upsert(event.document);
      // Added from elsewhere (the desktop menu) while nothing is open: open it.
      if (added && documents.loaded && documents.selectedId === null) documents.select(event.document.id);
      break;
    }
    case 'document-removed':
      useDocuments.getState().forget(event.docId);
      useProgress.getState().forget(event.docId);
      useSummaries.getState().forget(event.docId);
      break;
    case 'progress': {
      const { docId, phase } = event.progress;
      const before = useProgress.getState().live[docId]?.phase;
      useProgress.getState().apply(event.progress);
      // The backend announces a document when its reading starts and ends; in between, a new
      // phase is the sign that its text, size and structure have changed.
      if (phase !== before && (phase === 'indexing' || phase === 'ingesting')) void useDocuments.getState().loadDetail(docId, { quiet: true });
      break;
    }
    case 'answer-token':
      useChat.getState().appendToken(event.requestId, event.text);
      break;
    case 'summary-token':
      useSummaries.getState().appendToken(event.requestId, event.sectionIdx, event.text);
      break;
    case 'summary-section':
      useSummaries.getState().applySection(event.requestId, event.summary);
      break;
    case 'engine': {
      const engine = useEngine.getState();
      const wasDown = engine.status && engine.status.state !== 'ready' && engine.status.state !== 'busy';
      engine.setStatus(event.status);
      // Back from a restart: documents may have changed status meanwhile.
      if (wasDown && (event.status.state === 'ready' || event.status.state === 'busy')) void useDocuments.getState().load();
      break;
    }
  }
}

/** Starts listening; returns the function that stops. */
export function connectStores(client: FolioClient): () => void {
  const resync = () => {
    void useDocuments.getState().load();
    void useCollections.getState().load();
    void useEngine.getState().refresh();
    void useEngine.getState().loadSettings();
  };
  const offEvents = client.onEvent(routeEvent);
  const offConnection = client.onConnection((state) => {
    useEngine.getState().setConnection(state);
    if (state === 'open') resync();
  });
  useEngine.getState().setConnection(client.connection);
  if (client.connection === 'open') resync();
  const poll = setInterval(() => {
    if (client.connection === 'open') void useEngine.getState().refresh();
  }, STATUS_POLL_MS);
  return () => {
    offEvents();
    offConnection();
    clearInterval(poll);
  };
}
