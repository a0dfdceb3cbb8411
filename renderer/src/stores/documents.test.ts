import { beforeEach, describe, expect, it } from 'vitest';
import { installFakeClient, makeDoc, type FakeClient } from '../test/fakeClient';
import { orderedDocuments, useDocuments } from './documents';

let fake: FakeClient;
beforeEach(() => {
  useDocuments.setState({ ...useDocuments.getInitialState(), selectedId: null });
  fake = installFakeClient();
});

describe('documents store', () => {
  it('loads the library and selects the newest document', async () => {
    fake.handle('documents.list', () => [makeDoc({ id: 'a', createdAt: '2026-01-01' }), makeDoc({ id: 'b', createdAt: '2026-02-01' })]);
    await useDocuments.getState().load();
    const s = useDocuments.getState();
    expect(orderedDocuments(s.docs).map((d) => d.id)).toEqual(['b', 'a']);
    expect(s.selectedId).toBe('b');
    expect(s.loaded).toBe(true);
  });

  it('keeps the selection across a reload', async () => {
    useDocuments.getState().select('a');
    useDocuments.setState({ ...useDocuments.getInitialState(), selectedId: null });
    fake.handle('documents.list', () => [makeDoc({ id: 'a', createdAt: '2026-01-01' }), makeDoc({ id: 'b', createdAt: '2026-02-01' })]);
    await useDocuments.getState().load();
    expect(useDocuments.getState().selectedId).toBe('a');
  });

  it('drops a detail when the document has been read again', () => {
    const doc = makeDoc({ status: 'indexing' });
    useDocuments.setState({ docs: { doc1: doc }, details: { doc1: { ...doc, sections: [], pages: [], passageCount: 0, snapshots: 0 } } });
    useDocuments.getState().upsert({ ...doc, status: 'ingesting' });
    expect(useDocuments.getState().details.doc1).toBeDefined();
    useDocuments.getState().upsert({ ...doc, status: 'ready' });
    expect(useDocuments.getState().details.doc1).toBeUndefined();
  });

  it('forgets a removed document and moves the selection', () => {
    useDocuments.setState({ docs: { a: makeDoc({ id: 'a' }), b: makeDoc({ id: 'b' }) }, selectedId: 'a' });
    useDocuments.getState().forget('a');
    expect(Object.keys(useDocuments.getState().docs)).toEqual(['b']);
    expect(useDocuments.getState().selectedId).toBe('b');
  });

  it('adds files and selects the first one added', async () => {
    (fake.addFiles as unknown as { mockResolvedValueOnce(v: unknown): void }).mockResolvedValueOnce([makeDoc({ id: 'new', status: 'queued' })]);
    await useDocuments.getState().addFiles([new File(['x'], 'x.md')]);
    expect(useDocuments.getState().selectedId).toBe('new');
    expect(useDocuments.getState().uploads).toBe(0);
  });
});
