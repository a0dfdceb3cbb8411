import { fireEvent, render, screen } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Citation } from '../../../electron/api/types';
import { installFakeClient, makeDoc } from '../test/fakeClient';
import { useDocuments } from '../stores/documents';
import { useReader } from '../stores/reader';
import type { ChatMessage } from '../stores/chat';
import { CitationChip } from './CitationChip';
import { Message } from './Message';

const citation = (n: number, docId = 'doc2'): Citation => ({ n, docId, docTitle: 'Other', passageIdx: n, text: `passage ${n} text`,
  sectionLabel: 'Chapter 3', location: `Chapter 3, p. ${n}`, charStart: 100 * n, charEnd: 100 * n + 50, score: 1 });

beforeEach(() => {
  installFakeClient();
  useReader.setState({ target: null });
  useDocuments.setState({ docs: { doc1: makeDoc(), doc2: makeDoc({ id: 'doc2', title: 'Other' }) }, selectedId: 'doc1' });
});

describe('citations', () => {
  it('a chip opens its passage in the reader, switching documents when needed', () => {
    render(<ul><CitationChip citation={citation(2)} /></ul>);
    fireEvent.click(screen.getByRole('button', { name: 'Citation 2: Chapter 3, p. 2, open in the reader' }));
    expect(useDocuments.getState().selectedId).toBe('doc2');
    expect(useReader.getState().target).toMatchObject({ docId: 'doc2', charStart: 200, charEnd: 250, highlight: true });
  });

  it('an answer shows inline numbers for its citations and a list of sources', () => {
    const message: ChatMessage = { id: 'm1', role: 'assistant', text: 'Under the stair [1], not [7].', state: 'done',
      citations: [citation(1, 'doc1'), citation(2, 'doc1')] };
    render(<ul><Message message={message} /></ul>);
    const inline = screen.getByRole('button', { name: 'Open citation 1: Chapter 3, p. 1' });
    expect(inline.textContent).toBe('1');
    expect(screen.getByText(/not \[7\]\./)).toBeTruthy();
    expect(screen.getAllByRole('button', { name: /^Citation \d/ })).toHaveLength(2);
    fireEvent.click(inline);
    expect(useReader.getState().target).toMatchObject({ docId: 'doc1', charStart: 100 });
  });

  it('a stopped answer says it was stopped', () => {
    render(<ul><Message message={{ id: 'm', role: 'assistant', text: 'Half', citations: [], state: 'stopped' }} /></ul>);
    expect(screen.getByText(/Stopped/)).toBeTruthy();
  });
});
