// Where the reader should go: a passage to show (and highlight) or a place to jump to. `seq`
// changes on every request, so asking for the same passage twice scrolls there again.
import { create } from 'zustand';
import { loadPref, savePref } from '../lib/storage';

export interface ReaderTarget {
  docId: string;
  charStart: number;
  charEnd: number;
  highlight: boolean;
  seq: number;
}

interface ReaderState {
  target: ReaderTarget | null;
  /** The character at the top of the view, per document, so a reload opens at the same place. */
  positions: Record<string, number>;
  show(docId: string, charStart: number, charEnd: number): void;
  jump(docId: string, charPos: number): void;
  clearHighlight(): void;
  rememberPosition(docId: string, charPos: number): void;
}

let seq = 0;

export const useReader = create<ReaderState>()((set) => ({
  target: null,
  positions: loadPref<Record<string, number>>('readerPositions', {}),
  show(docId, charStart, charEnd) {
    set({ target: { docId, charStart, charEnd: Math.max(charStart, charEnd), highlight: true, seq: ++seq } });
  },
  jump(docId, charPos) {
    set({ target: { docId, charStart: charPos, charEnd: charPos, highlight: false, seq: ++seq } });
  },
  clearHighlight() {
    set({ target: null });
  },
  rememberPosition(docId, charPos) {
    set((s) => {
      const positions = { ...s.positions, [docId]: charPos };
      savePref('readerPositions', positions);
      return { positions };
    });
  },
}));
