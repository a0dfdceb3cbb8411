// The selected document: its header and actions, the reading progress while the model reads
// it, and the reader once its text is available.
import { useEffect, useState } from 'react';
import type { DocumentInfo } from '../../../electron/api/types';
import { formatBytes, formatTokens } from '../lib/format';
import { isActive } from '../lib/progress';
import { shortcutLabel } from '../lib/shortcuts';
import { openFiles } from '../lib/openFiles';
import { orderedCollections, useCollections } from '../stores/collections';
import { useDocuments } from '../stores/documents';
import { useEngine } from '../stores/engine';
import { EmptyState } from './EmptyState';
import { IngestProgress } from './IngestProgress';
import { Reader } from './Reader';

// The text file exists once the document has been opened (it is rewritten while it is read again).
function hasText(doc: DocumentInfo): boolean {
  return doc.charCount > 0 && doc.status !== 'reading';
}

function CollectionPicker({ doc }: { doc: DocumentInfo }) {
  const collections = useCollections((s) => s.collections);
  const move = useCollections((s) => s.move);
  const list = orderedCollections(collections);
  if (!list.length) return null;
  return (
    <select aria-label="Collection" value={doc.collectionId ?? ''} onChange={(e) => void move(doc.id, e.currentTarget.value || null)}>
      <option value="">No collection</option>
      {list.map((c) => <option key={c.id} value={c.id}>{c.name}</option>)}
    </select>
  );
}

function DocumentHeader({ doc }: { doc: DocumentInfo }) {
  const { remove, reingest } = useDocuments.getState();
  const [confirming, setConfirming] = useState(false);
  useEffect(() => setConfirming(false), [doc.id]);
  return (
    <header className="doc-header">
      <div className="doc-heading">
        <h2 title={doc.sourcePath}>{doc.title}</h2>
        <p className="doc-facts">
          {doc.tokenCount > 0 && <span>{formatTokens(doc.tokenCount)}</span>}
          {doc.charCount > 0 && <span>{doc.charCount.toLocaleString()} characters</span>}
          {doc.sourceBytes > 0 && <span>{formatBytes(doc.sourceBytes)} file</span>}
          <span className="path" title={doc.sourcePath}>{doc.sourcePath}</span>
        </p>
      </div>
      <div className="row">
        <CollectionPicker doc={doc} />
        {!isActive(doc) && doc.status !== 'queued' && (
          <button type="button" className="secondary" onClick={() => void reingest(doc.id)}
            title="Read the document again from the start with the current model">Read again</button>
        )}
        {confirming ? (
          <>
            <button type="button" className="danger" onClick={() => void remove(doc.id)}>Remove from library</button>
            <button type="button" className="secondary" onClick={() => setConfirming(false)}>Keep</button>
          </>
        ) : (
          <button type="button" className="secondary" onClick={() => setConfirming(true)}>Remove…</button>
        )}
      </div>
    </header>
  );
}

/** A document read by another model than the loaded one: its saved states do not apply. */
function OtherModel({ doc }: { doc: DocumentInfo }) {
  const model = useEngine((s) => s.status?.model);
  if (!model || !doc.modelFingerprint || doc.modelFingerprint === model.fingerprint || doc.status !== 'ready') return null;
  return (
    <section className="ingest stage-interrupted" aria-label="Read by another model">
      <h2>Read by another model</h2>
      <p className="hint">This document was read by a different model than the one loaded now ({model.name}). Questions and
        summaries need it read by this model.</p>
      <div className="row">
        <button type="button" onClick={() => void useDocuments.getState().resume(doc.id)}>Read with this model</button>
      </div>
    </section>
  );
}

export function DocumentView() {
  const doc = useDocuments((s) => (s.selectedId ? s.docs[s.selectedId] : undefined));
  const detail = useDocuments((s) => (s.selectedId ? s.details[s.selectedId] : undefined));
  const loaded = useDocuments((s) => s.loaded);
  const count = useDocuments((s) => Object.keys(s.docs).length);
  const loadDetail = useDocuments((s) => s.loadDetail);
  const textReady = doc ? hasText(doc) : false;

  useEffect(() => {
    if (doc && textReady && !detail) void loadDetail(doc.id);
  }, [doc, textReady, detail, loadDetail]);

  if (!doc) {
    if (!loaded) return <div className="loading" role="status">Opening the library…</div>;
    return count ? (
      <EmptyState title="Choose a document">
        <p>Pick a document in the library to read it, ask questions about it and summarize it.</p>
      </EmptyState>
    ) : (
      <EmptyState title="Welcome to Folio" action={<button type="button" onClick={openFiles}>Open a document…</button>}>
        <p>Folio reads whole books, PDFs and code folders with a language model that runs on this computer, offline.
          It reads each document once and keeps what it learned, so questions and summaries come quickly afterwards, with
          citations you can click to see the passage.</p>
        <ol className="steps">
          <li>Drop a file anywhere on this window, or choose Open… ({shortcutLabel('o')}).</li>
          <li>Wait while the model reads it; you can watch the progress and keep using Folio.</li>
          <li>Ask a question ({shortcutLabel('k')}) or write a summary.</li>
        </ol>
      </EmptyState>
    );
  }
  return (
    <article className="document-view" aria-label={doc.title}>
      <DocumentHeader doc={doc} />
      {doc.status !== 'ready' && <IngestProgress doc={doc} />}
      <OtherModel doc={doc} />
      {textReady && detail && detail.charCount > 0 ? <Reader detail={detail} /> : textReady ? (
        <div className="loading" role="status">Opening the text…</div>
      ) : (
        <p className="hint reader-wait">The text appears here as soon as the file has been opened.</p>
      )}
    </article>
  );
}
