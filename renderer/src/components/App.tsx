// The window: library, document and reader, ask/summary panel, status bar; global shortcuts
// and drag and drop.
import { useEffect } from 'react';
import { openFiles } from '../lib/openFiles';
import { isMacPlatform, shortcutFor } from '../lib/shortcuts';
import { subjectKey, useChat } from '../stores/chat';
import { useDocuments } from '../stores/documents';
import { useEngine } from '../stores/engine';
import { useSummaries } from '../stores/summaries';
import { useUi } from '../stores/ui';
import { ASK_INPUT_ID } from './AskPanel';
import { DocumentView } from './DocumentView';
import { DropZone } from './DropZone';
import { ErrorBoundary } from './ErrorBoundary';
import { Library } from './Library';
import { Notices } from './Notices';
import { SettingsDialog } from './SettingsDialog';
import { SidePanel } from './SidePanel';
import { StatusBar } from './StatusBar';

/** Esc: stop whatever the selected document is generating (an answer first, then a summary). */
function stopGenerating(): boolean {
  const docId = useDocuments.getState().selectedId;
  const collectionId = useUi.getState().askingCollection;
  const chats = [collectionId ? subjectKey({ collectionId }) : null, docId].filter((k): k is string => k !== null);
  for (const key of chats) {
    if (useChat.getState().threads[key]?.requestId) {
      void useChat.getState().stop(key);
      return true;
    }
  }
  if (docId && useSummaries.getState().byDoc[docId]?.requestId) {
    void useSummaries.getState().stop(docId);
    return true;
  }
  return false;
}

function focusAsk(): void {
  useUi.getState().setPanel('ask');
  // The panel may have just been switched to: focus after it renders.
  requestAnimationFrame(() => document.getElementById(ASK_INPUT_ID)?.focus());
}

function useShortcuts(): void {
  useEffect(() => {
    const mac = isMacPlatform();
    const onKeyDown = (e: KeyboardEvent) => {
      const action = shortcutFor(e, mac);
      if (!action) return;
      if (action === 'stop') {
        if (!useUi.getState().settingsOpen && stopGenerating()) e.preventDefault();
        return;
      }
      e.preventDefault();
      if (action === 'open') openFiles();
      else if (action === 'ask') focusAsk();
      else if (action === 'settings') useUi.getState().setSettingsOpen(true);
    };
    window.addEventListener('keydown', onKeyDown);
    return () => window.removeEventListener('keydown', onKeyDown);
  }, []);
}

function ConnectionBanner() {
  const connection = useEngine((s) => s.connection);
  const engine = useEngine((s) => s.status);
  if (connection === 'unauthorized') {
    return <div className="banner error" role="alert">The Folio server did not accept this page's token. Open the address the server printed when it started (it ends in #token=…).</div>;
  }
  if (connection === 'closed') return <div className="banner" role="status">The connection to the Folio server was lost. Reconnecting…</div>;
  if (engine?.state === 'restarting') return <div className="banner" role="status">The engine stopped and is restarting. Documents being read continue from their last snapshot.</div>;
  if (engine?.state === 'error') return <div className="banner error" role="alert">The engine has stopped: {engine.message ?? 'unknown error'}</div>;
  return null;
}

export function App() {
  useShortcuts();
  const hasDocument = useDocuments((s) => s.selectedId !== null && s.docs[s.selectedId] !== undefined);
  const askingCollection = useUi((s) => s.askingCollection !== null);
  const withPanel = hasDocument || askingCollection;
  return (
    <div className="app">
      <a className="skip-link" href={`#${ASK_INPUT_ID}`} onClick={(e) => { e.preventDefault(); focusAsk(); }}>Skip to the question box</a>
      <ConnectionBanner />
      <div className={`columns${withPanel ? '' : ' no-panel'}`}>
        <ErrorBoundary area="library"><Library /></ErrorBoundary>
        <main className="workspace">
          <ErrorBoundary area="reader"><DocumentView /></ErrorBoundary>
        </main>
        {withPanel && <SidePanel />}
      </div>
      <StatusBar />
      <SettingsDialog />
      <Notices />
      <DropZone />
    </div>
  );
}
