// Summaries per document: the whole document and each section, streamed as they are written.
// The backend caches them; after a reload the documents summarized before are asked for
// again, which returns the cached text at once.
import { create } from 'zustand';
import type { SectionSummary } from '../../../electron/api/types';
import { client } from '../api/current';
import { describeError, isCancellation } from '../lib/errors';
import { newRequestId } from '../lib/ids';
import { loadPref, savePref } from '../lib/storage';

export interface SummaryEntry {
  status: 'idle' | 'running' | 'done' | 'stopped' | 'error';
  requestId: string | null;
  document: SectionSummary | null;
  sections: SectionSummary[];
  /** Text streaming in, by section index (-1: the whole document). */
  streaming: Record<number, string>;
  error: string | null;
}

interface SummariesState {
  byDoc: Record<string, SummaryEntry>;
  streams: Record<string, string>;
  generate(docId: string, regenerate?: boolean): Promise<void>;
  restore(docId: string): void;
  appendToken(requestId: string, sectionIdx: number, text: string): void;
  applySection(requestId: string, summary: SectionSummary): void;
  stop(docId: string): Promise<void>;
  forget(docId: string): void;
}

export const emptySummary: SummaryEntry = { status: 'idle', requestId: null, document: null, sections: [], streaming: {}, error: null };

const SUMMARIZED = 'summarizedDocs';

function placeSection(sections: SectionSummary[], summary: SectionSummary): SectionSummary[] {
  const rest = sections.filter((s) => s.sectionIdx !== summary.sectionIdx);
  return [...rest, summary].sort((a, b) => a.sectionIdx - b.sectionIdx);
}

export const useSummaries = create<SummariesState>()((set, get) => {
  const update = (docId: string, change: (e: SummaryEntry) => Partial<SummaryEntry>) =>
    set((s) => {
      const current = s.byDoc[docId] ?? emptySummary;
      return { byDoc: { ...s.byDoc, [docId]: { ...current, ...change(current) } } };
    });
  const markSummarized = (docId: string, yes: boolean) => {
    const list = new Set(loadPref<string[]>(SUMMARIZED, []));
    if (yes) list.add(docId);
    else list.delete(docId);
    savePref(SUMMARIZED, [...list]);
  };

  return {
    byDoc: {},
    streams: {},

    async generate(docId, regenerate = false) {
      if (get().byDoc[docId]?.requestId) return;
      const requestId = newRequestId('s');
      update(docId, (e) => ({ status: 'running', requestId, error: null, streaming: {},
        ...(regenerate ? { document: null, sections: [] } : { document: e.document, sections: e.sections }) }));
      set((s) => ({ streams: { ...s.streams, [requestId]: docId } }));
      try {
        const result = await client().call('summarize', { requestId, docId, ...(regenerate ? { regenerate: true } : {}) });
        update(docId, () => ({ status: 'done', document: result.document, sections: result.sections, streaming: {} }));
        markSummarized(docId, true);
      } catch (error) {
        if (isCancellation(error)) update(docId, () => ({ status: 'stopped' }));
        else update(docId, () => ({ status: 'error', error: describeError(error) }));
      } finally {
        update(docId, () => ({ requestId: null }));
        set((s) => {
          const { [requestId]: _done, ...streams } = s.streams;
          return { streams };
        });
      }
    },

    restore(docId) {
      const entry = get().byDoc[docId];
      if (entry && entry.status !== 'idle') return;
      if (loadPref<string[]>(SUMMARIZED, []).includes(docId)) void get().generate(docId, false);
    },

    appendToken(requestId, sectionIdx, text) {
      const docId = get().streams[requestId];
      if (!docId) return;
      update(docId, (e) => ({ streaming: { ...e.streaming, [sectionIdx]: (e.streaming[sectionIdx] ?? '') + text } }));
    },

    applySection(requestId, summary) {
      const docId = get().streams[requestId];
      if (!docId) return;
      update(docId, (e) => {
        const { [summary.sectionIdx]: _done, ...streaming } = e.streaming;
        return summary.sectionIdx < 0 ? { document: summary, streaming } : { sections: placeSection(e.sections, summary), streaming };
      });
    },

    async stop(docId) {
      const requestId = get().byDoc[docId]?.requestId;
      if (!requestId) return;
      try {
        await client().call('cancel', { requestId });
      } catch {
        // Already finished.
      }
    },

    forget(docId) {
      markSummarized(docId, false);
      set((s) => {
        const { [docId]: _gone, ...byDoc } = s.byDoc;
        return { byDoc };
      });
    },
  };
});
