// Which panel is open, and the settings dialog.
import { create } from 'zustand';
import { loadPref, savePref } from '../lib/storage';

export type SidePanel = 'ask' | 'summary';

interface UiState {
  panel: SidePanel;
  settingsOpen: boolean;
  /** The collection the Ask panel is asking, instead of the selected document. */
  askingCollection: string | null;
  setPanel(panel: SidePanel): void;
  setSettingsOpen(open: boolean): void;
  askCollection(collectionId: string | null): void;
}

export const useUi = create<UiState>()((set) => ({
  panel: loadPref<SidePanel>('panel', 'ask'),
  settingsOpen: false,
  askingCollection: null,
  setPanel(panel) {
    savePref('panel', panel);
    set({ panel });
  },
  setSettingsOpen(settingsOpen) {
    set({ settingsOpen });
  },
  askCollection(askingCollection) {
    if (askingCollection) savePref('panel', 'ask');
    set(askingCollection ? { askingCollection, panel: 'ask' } : { askingCollection });
  },
}));
