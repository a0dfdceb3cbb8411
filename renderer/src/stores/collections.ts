// Collections: named groups of documents that can be asked about together.
import { create } from 'zustand';
import type { CollectionInfo } from '../../../electron/api/types';
import { client } from '../api/current';
import { describeError } from '../lib/errors';
import { useDocuments } from './documents';
import { notifyError } from './notices';

interface CollectionsState {
  collections: Record<string, CollectionInfo>;
  load(): Promise<void>;
  create(name: string): Promise<CollectionInfo | null>;
  remove(collectionId: string): Promise<void>;
  move(docId: string, collectionId: string | null): Promise<void>;
}

export function orderedCollections(collections: Record<string, CollectionInfo>): CollectionInfo[] {
  return Object.values(collections).sort((a, b) => a.name.localeCompare(b.name));
}

export const useCollections = create<CollectionsState>()((set) => ({
  collections: {},
  async load() {
    try {
      const list = await client().call('collections.list', {});
      set({ collections: Object.fromEntries(list.map((c) => [c.id, c])) });
    } catch (error) {
      notifyError(`The collections could not be loaded: ${describeError(error)}`);
    }
  },
  async create(name) {
    try {
      const collection = await client().call('collections.create', { name: name.trim() });
      set((s) => ({ collections: { ...s.collections, [collection.id]: collection } }));
      return collection;
    } catch (error) {
      notifyError(describeError(error));
      return null;
    }
  },
  async remove(collectionId) {
    try {
      await client().call('collections.remove', { collectionId });
      set((s) => {
        const { [collectionId]: _gone, ...collections } = s.collections;
        return { collections };
      });
      // Its documents stay in the library, outside any collection.
      await useDocuments.getState().load();
    } catch (error) {
      notifyError(describeError(error));
    }
  },
  async move(docId, collectionId) {
    try {
      useDocuments.getState().upsert(await client().call('documents.setCollection', { docId, collectionId }));
    } catch (error) {
      notifyError(describeError(error));
    }
  },
}));
