// The sidebar: the documents, grouped by collection, with Open, new collections and Settings.
import { useMemo, useState, type FormEvent } from 'react';
import type { CollectionInfo, DocumentInfo } from '../../../electron/api/types';
import { client } from '../api/current';
import { openFiles, registerFileInput } from '../lib/openFiles';
import { shortcutLabel } from '../lib/shortcuts';
import { orderedCollections, useCollections } from '../stores/collections';
import { orderedDocuments, useDocuments } from '../stores/documents';
import { useUi } from '../stores/ui';
import { DocumentRow } from './DocumentRow';

interface Group {
  collection: CollectionInfo | null;
  docs: DocumentInfo[];
}

/** Documents outside any collection first, then each collection (also the empty ones). */
export function libraryGroups(docs: DocumentInfo[], collections: CollectionInfo[]): Group[] {
  const known = new Set(collections.map((c) => c.id));
  const loose = docs.filter((d) => !d.collectionId || !known.has(d.collectionId));
  return [
    { collection: null, docs: loose },
    ...collections.map((c) => ({ collection: c, docs: docs.filter((d) => d.collectionId === c.id) })),
  ];
}

function NewCollection() {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState('');
  const create = useCollections((s) => s.create);
  if (!open) {
    return <button type="button" className="secondary" onClick={() => setOpen(true)}>New collection…</button>;
  }
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return;
    if (await create(name)) {
      setName('');
      setOpen(false);
    }
  };
  return (
    <form className="new-collection" onSubmit={(e) => void submit(e)}>
      <input aria-label="Name of the new collection" placeholder="Collection name" value={name} autoFocus maxLength={200}
        onChange={(e) => setName(e.currentTarget.value)} onKeyDown={(e) => { if (e.key === 'Escape') setOpen(false); }} />
      <button type="submit" disabled={!name.trim()}>Create</button>
    </form>
  );
}

function CollectionHeader({ collection, count }: { collection: CollectionInfo; count: number }) {
  const askCollection = useUi((s) => s.askCollection);
  const asking = useUi((s) => s.askingCollection === collection.id);
  const remove = useCollections((s) => s.remove);
  const [confirming, setConfirming] = useState(false);
  return (
    <div className="group-head">
      <h2 className="group-label">{collection.name}</h2>
      <span className="row">
        <button type="button" className={`link${asking ? ' current' : ''}`} disabled={count === 0} aria-pressed={asking}
          onClick={() => askCollection(asking ? null : collection.id)} aria-label={`Ask the collection ${collection.name}`}>Ask</button>
        {confirming ? (
          <button type="button" className="link danger-link" onClick={() => void remove(collection.id)}
            aria-label={`Confirm: remove the collection ${collection.name} (its documents stay)`}>Remove?</button>
        ) : (
          <button type="button" className="icon small" onClick={() => setConfirming(true)}
            aria-label={`Remove the collection ${collection.name}`}>×</button>
        )}
      </span>
    </div>
  );
}

export function Library() {
  const docs = useDocuments((s) => s.docs);
  const loaded = useDocuments((s) => s.loaded);
  const loadError = useDocuments((s) => s.loadError);
  const selectedId = useDocuments((s) => s.selectedId);
  const uploads = useDocuments((s) => s.uploads);
  const select = useDocuments((s) => s.select);
  const addFiles = useDocuments((s) => s.addFiles);
  const collections = useCollections((s) => s.collections);
  const openSettings = useUi((s) => s.setSettingsOpen);
  const ordered = useMemo(() => orderedDocuments(docs), [docs]);
  const groups = useMemo(() => libraryGroups(ordered, orderedCollections(collections)), [ordered, collections]);
  const desktop = client().pickFiles !== null;

  return (
    <nav className="library" aria-label="Library">
      <div className="library-head">
        <h1 className="brand">Folio</h1>
        <button type="button" onClick={openFiles} title={`Add documents (${shortcutLabel('o')})`}>Open…</button>
        {!desktop && (
          <input ref={registerFileInput} type="file" multiple hidden aria-label="Choose documents to add" data-testid="file-input"
            onChange={(e) => {
              const files = Array.from(e.currentTarget.files ?? []);
              e.currentTarget.value = '';
              void addFiles(files);
            }} />
        )}
      </div>
      {uploads > 0 && <p className="hint uploading" role="status">Adding {uploads} {uploads === 1 ? 'file' : 'files'}…</p>}
      {loadError && <p className="error-text library-error" role="alert">The library could not be loaded: {loadError}</p>}
      {loaded && !ordered.length && !loadError && (
        <div className="library-empty">
          <p><strong>Your library is empty.</strong></p>
          <p>Drop a book, a PDF, an EPUB or {desktop ? 'a folder of code' : 'a text file'} anywhere on this window, or choose Open… ({shortcutLabel('o')}).</p>
        </div>
      )}
      <div className="library-list">
        {groups.map((group) => (
          (group.collection || group.docs.length > 0) && (
            <div key={group.collection?.id ?? 'loose'} role="group" aria-label={group.collection ? `Collection ${group.collection.name}` : 'Documents'}>
              {group.collection && <CollectionHeader collection={group.collection} count={group.docs.length} />}
              {group.collection && !group.docs.length && <p className="hint group-empty">Empty: move documents here from their page.</p>}
              <ul>
                {group.docs.map((doc) => (
                  <DocumentRow key={doc.id} doc={doc} selected={doc.id === selectedId} onSelect={() => select(doc.id)} />
                ))}
              </ul>
            </div>
          )
        ))}
      </div>
      <div className="library-foot row">
        <NewCollection />
        <button type="button" className="secondary" onClick={() => openSettings(true)}>Settings</button>
      </div>
    </nav>
  );
}
