// The latest ingestion progress event per document. Only live data: after a reload the view
// starts from the documents' stored status (lib/progress.ts) until the next event comes.
import { create } from 'zustand';
import type { IngestProgress } from '../../../electron/api/types';

interface ProgressState {
  live: Record<string, IngestProgress>;
  apply(progress: IngestProgress): void;
  forget(docId: string): void;
}

export const useProgress = create<ProgressState>()((set) => ({
  live: {},
  apply(progress) {
    set((s) => ({ live: { ...s.live, [progress.docId]: progress } }));
  },
  forget(docId) {
    set((s) => {
      const { [docId]: _gone, ...live } = s.live;
      return { live };
    });
  },
}));
