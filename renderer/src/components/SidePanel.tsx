// The panel beside the reader: Ask and Summary tabs for the selected document, or the Ask
// panel of a collection.
import { useMemo, useRef, type KeyboardEvent } from 'react';
import { useCollections } from '../stores/collections';
import { useDocuments } from '../stores/documents';
import { useProgress } from '../stores/progress';
import { useUi, type SidePanel as Panel } from '../stores/ui';
import { AskPanel, collectionSubject, documentSubject } from './AskPanel';
import { ErrorBoundary } from './ErrorBoundary';
import { SummaryPanel } from './SummaryPanel';

const TABS: { id: Panel; label: string }[] = [{ id: 'ask', label: 'Ask' }, { id: 'summary', label: 'Summary' }];

export function SidePanel() {
  const doc = useDocuments((s) => (s.selectedId ? s.docs[s.selectedId] : undefined));
  const docs = useDocuments((s) => s.docs);
  const live = useProgress((s) => (doc ? s.live[doc.id] : undefined));
  const collectionId = useUi((s) => s.askingCollection);
  const collection = useCollections((s) => (collectionId ? s.collections[collectionId] : undefined));
  const panel = useUi((s) => s.panel);
  const setPanel = useUi((s) => s.setPanel);
  const askCollection = useUi((s) => s.askCollection);
  const tabs = useRef<(HTMLButtonElement | null)[]>([]);
  const collectionAsk = useMemo(() => (collection ? collectionSubject(collection, Object.values(docs)) : null), [collection, docs]);
  if (!doc && !collectionAsk) return null;
  const shown: Panel = collectionAsk || !doc ? 'ask' : panel;

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const i = TABS.findIndex((t) => t.id === shown);
    const next = TABS[(i + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length];
    if (next.id === 'summary') askCollection(null);
    setPanel(next.id);
    tabs.current[TABS.indexOf(next)]?.focus();
  };
  return (
    <aside className="side-panel" aria-label="Ask and summarize">
      <div className="tabs" role="tablist" aria-label="Panels" onKeyDown={onKeyDown}>
        {TABS.map((t, i) => (
          <button key={t.id} ref={(el) => { tabs.current[i] = el; }} type="button" role="tab" id={`tab-${t.id}`}
            aria-selected={shown === t.id} aria-controls={`panel-${t.id}`} tabIndex={shown === t.id ? 0 : -1}
            className={shown === t.id ? 'active' : ''} disabled={!doc && t.id === 'summary'}
            onClick={() => {
              if (t.id === 'summary') askCollection(null);
              setPanel(t.id);
            }}>
            {t.label}
          </button>
        ))}
      </div>
      {collectionAsk && (
        <div className="subject-bar">
          <span>Asking the collection <strong>{collectionAsk.title}</strong></span>
          {doc && <button type="button" className="link" onClick={() => askCollection(null)}>Ask {doc.title} instead</button>}
        </div>
      )}
      <div className="tab-panel" role="tabpanel" id={`panel-${shown}`} aria-labelledby={`tab-${shown}`}>
        <ErrorBoundary area={shown === 'ask' ? 'conversation' : 'summary'} key={`${collectionAsk?.key ?? doc?.id}:${shown}`}>
          {shown === 'summary' && doc ? <SummaryPanel doc={doc} />
            : <AskPanel subject={collectionAsk ?? documentSubject(doc!, live)} />}
        </ErrorBoundary>
      </div>
    </aside>
  );
}
