import { beforeEach, describe, expect, it } from 'vitest';
import type { SectionSummary, SummaryResult } from '../../../electron/api/types';
import { installFakeClient, type FakeClient } from '../test/fakeClient';
import { useSummaries } from './summaries';

const section = (idx: number, text: string): SectionSummary => ({ sectionIdx: idx, label: `Chapter ${idx + 1}`, text, keyPassages: [], cached: false });

let fake: FakeClient;
beforeEach(() => {
  useSummaries.setState(useSummaries.getInitialState());
  fake = installFakeClient();
});

describe('summaries store', () => {
  it('streams section texts, places finished sections, ends with the result', async () => {
    let finish!: (r: SummaryResult) => void;
    fake.handle('summarize', () => new Promise((resolve) => { finish = resolve; }));
    const done = useSummaries.getState().generate('doc1');
    await Promise.resolve();
    const { requestId } = useSummaries.getState().byDoc.doc1;
    const s = useSummaries.getState();
    s.appendToken(requestId!, 1, 'Second ');
    s.appendToken(requestId!, 0, 'First');
    s.applySection(requestId!, section(0, 'First.'));
    let entry = useSummaries.getState().byDoc.doc1;
    expect(entry.sections.map((x) => x.text)).toEqual(['First.']);
    expect(entry.streaming).toEqual({ 1: 'Second ' });
    finish({ requestId: requestId!, docId: 'doc1', document: section(-1, 'All.'), sections: [section(0, 'First.'), section(1, 'Second.')] });
    await done;
    entry = useSummaries.getState().byDoc.doc1;
    expect(entry).toMatchObject({ status: 'done', requestId: null, streaming: {} });
    expect(entry.document?.text).toBe('All.');
  });

  it('asks again for documents summarized before a reload, and only those', async () => {
    fake.handle('summarize', (p) => ({ requestId: p.requestId, docId: p.docId, document: section(-1, 'cached'), sections: [] }));
    await useSummaries.getState().generate('doc1');
    useSummaries.setState(useSummaries.getInitialState());
    useSummaries.getState().restore('doc1');
    useSummaries.getState().restore('doc2');
    await Promise.resolve();
    await Promise.resolve();
    const asked = fake.calls.filter((c) => c.method === 'summarize').map((c) => (c.params as { docId: string; regenerate?: boolean }));
    expect(asked).toEqual([expect.objectContaining({ docId: 'doc1' }), expect.objectContaining({ docId: 'doc1' })]);
    expect(asked[1].regenerate).toBeUndefined();
  });

  it('regenerates from scratch', async () => {
    fake.handle('summarize', (p) => ({ requestId: p.requestId, docId: p.docId, document: section(-1, 'new'), sections: [] }));
    await useSummaries.getState().generate('doc1', true);
    expect(fake.calls[0].params).toMatchObject({ regenerate: true });
  });
});
