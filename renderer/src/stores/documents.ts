// The library: every document's info (kept current by events), details with sections loaded
// on demand, the selected document, and the library actions.
import { create } from 'zustand';
import type { DocumentDetail, DocumentInfo } from '../../../electron/api/types';
import { client } from '../api/current';
import { describeError } from '../lib/errors';
import { loadPref, savePref } from '../lib/storage';
import { notifyError, notifyInfo } from './notices';

interface DocumentsState {
  docs: Record<string, DocumentInfo>;
  details: Record<string, DocumentDetail>;
  loaded: boolean;
  loadError: string | null;
  selectedId: string | null;
  uploads: number;
  load(): Promise<void>;
  select(docId: string | null): void;
  upsert(doc: DocumentInfo): void;
  forget(docId: string): void;
  loadDetail(docId: string, options?: { quiet?: boolean }): Promise<void>;
  addFiles(files: readonly File[]): Promise<void>;
  addFromDialog(): Promise<void>;
  remove(docId: string): Promise<void>;
  cancel(docId: string): Promise<void>;
  resume(docId: string): Promise<void>;
  reingest(docId: string): Promise<void>;
}

/** Newest first. */
export function orderedDocuments(docs: Record<string, DocumentInfo>): DocumentInfo[] {
  return Object.values(docs).sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.title.localeCompare(b.title));
}

// A detail is stale once the text or the structure may have changed.
function detailStale(before: DocumentInfo | undefined, after: DocumentInfo): boolean {
  if (!before || before.charCount !== after.charCount) return true;
  return before.status !== after.status && (after.status === 'ready' || after.status === 'indexing');
}

export const useDocuments = create<DocumentsState>()((set, get) => {
  async function act<T>(run: () => Promise<T>): Promise<T | undefined> {
    try {
      return await run();
    } catch (error) {
      notifyError(describeError(error));
      return undefined;
    }
  }
  const selectNew = (added: DocumentInfo[]) => {
    for (const doc of added) get().upsert(doc);
    if (added.length) get().select(added[0].id);
  };

  return {
    docs: {},
    details: {},
    loaded: false,
    loadError: null,
    selectedId: loadPref<string | null>('selectedDoc', null),
    uploads: 0,

    async load() {
      try {
        const list = await client().call('documents.list', {});
        const docs = Object.fromEntries(list.map((d) => [d.id, d]));
        set((s) => {
          const details = Object.fromEntries(Object.entries(s.details).filter(([id]) => docs[id] && !detailStale(s.docs[id], docs[id])));
          const wanted = s.selectedId ?? loadPref<string | null>('selectedDoc', null);
          const selectedId = wanted && docs[wanted] ? wanted : orderedDocuments(docs)[0]?.id ?? null;
          return { docs, details, loaded: true, loadError: null, selectedId };
        });
      } catch (error) {
        set({ loadError: describeError(error), loaded: true });
      }
    },

    select(docId) {
      savePref('selectedDoc', docId);
      set({ selectedId: docId });
    },

    upsert(doc) {
      set((s) => {
        const stale = detailStale(s.docs[doc.id], doc);
        const details = stale && s.details[doc.id] ? { ...s.details } : s.details;
        if (stale) delete details[doc.id];
        return { docs: { ...s.docs, [doc.id]: doc }, details };
      });
    },

    forget(docId) {
      set((s) => {
        const { [docId]: _doc, ...docs } = s.docs;
        const { [docId]: _detail, ...details } = s.details;
        const selectedId = s.selectedId === docId ? orderedDocuments(docs)[0]?.id ?? null : s.selectedId;
        if (selectedId !== s.selectedId) savePref('selectedDoc', selectedId);
        return { docs, details, selectedId };
      });
    },

    async loadDetail(docId, options = {}) {
      try {
        const detail = await client().call('documents.get', { docId });
        // Removed meanwhile: do not bring it back.
        set((s) => (s.docs[docId] ? { details: { ...s.details, [docId]: detail }, docs: { ...s.docs, [docId]: stripDetail(detail) } } : s));
      } catch (error) {
        if (!options.quiet) notifyError(describeError(error));
      }
    },

    async addFiles(files) {
      if (!files.length) return;
      set((s) => ({ uploads: s.uploads + files.length }));
      try {
        selectNew(await client().addFiles(files));
      } catch (error) {
        notifyError(describeError(error));
      } finally {
        set((s) => ({ uploads: Math.max(0, s.uploads - files.length) }));
      }
    },

    async addFromDialog() {
      const pick = client().pickFiles;
      if (!pick) return;
      const added = await act(pick);
      if (added) selectNew(added);
    },

    async remove(docId) {
      const title = get().docs[docId]?.title;
      const done = await act(() => client().call('documents.remove', { docId }));
      if (done?.removed) {
        get().forget(docId);
        if (title) notifyInfo(`Removed ${title} from the library.`);
      }
    },

    async cancel(docId) {
      await act(() => client().call('documents.cancel', { docId }));
    },

    async resume(docId) {
      const doc = await act(() => client().call('documents.resume', { docId }));
      if (doc) get().upsert(doc);
    },

    async reingest(docId) {
      const doc = await act(() => client().call('documents.reingest', { docId }));
      if (doc) get().upsert(doc);
    },
  };
});

function stripDetail(detail: DocumentDetail): DocumentInfo {
  const { sections: _s, pages: _p, passageCount: _c, snapshots: _n, ...info } = detail;
  return info;
}
