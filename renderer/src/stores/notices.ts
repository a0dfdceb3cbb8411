// Messages for the person: errors stay until dismissed, information fades after a while.
import { create } from 'zustand';

export interface Notice {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

interface NoticesState {
  notices: Notice[];
  push(text: string, kind?: Notice['kind']): number;
  dismiss(id: number): void;
}

const INFO_MS = 6000;
const MAX_NOTICES = 5;
let nextId = 1;

export const useNotices = create<NoticesState>()((set, get) => ({
  notices: [],
  push(text, kind = 'error') {
    const id = nextId++;
    // The same message twice in a row is shown once.
    const last = get().notices.at(-1);
    if (last && last.text === text && last.kind === kind) return last.id;
    set((s) => ({ notices: [...s.notices, { id, kind, text }].slice(-MAX_NOTICES) }));
    if (kind === 'info') setTimeout(() => get().dismiss(id), INFO_MS);
    return id;
  },
  dismiss(id) {
    set((s) => ({ notices: s.notices.filter((n) => n.id !== id) }));
  },
}));

export const notifyError = (text: string) => useNotices.getState().push(text, 'error');
export const notifyInfo = (text: string) => useNotices.getState().push(text, 'info');
