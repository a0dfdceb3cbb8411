import { beforeEach, describe, expect, it } from 'vitest';
import type { AnswerResult, Citation } from '../../../electron/api/types';
import { ClientError } from '../api/clientError';
import { installFakeClient, type FakeClient } from '../test/fakeClient';
import { subjectKey, useChat } from './chat';

const citation: Citation = { n: 1, docId: 'doc1', docTitle: 'The Book', passageIdx: 3, text: 'the key is under the stair',
  sectionLabel: 'Chapter 3', location: 'Chapter 3', charStart: 500, charEnd: 560, score: 2 };

let fake: FakeClient;
beforeEach(() => {
  useChat.setState(useChat.getInitialState());
  fake = installFakeClient();
  fake.handle('conversations.list', () => []);
});

describe('chat store', () => {
  it('streams an answer, then replaces it with the final text and citations', async () => {
    let finish!: (r: AnswerResult) => void;
    fake.handle('ask', (p) => new Promise<AnswerResult>((resolve) => {
      finish = resolve;
      fake.emit({ type: 'answer-token', requestId: p.requestId, text: 'Under ' });
    }));
    const { ask, appendToken } = useChat.getState();
    const done = ask('doc1', ' Where is the key? ');
    await Promise.resolve();
    const requestId = (fake.calls.find((c) => c.method === 'ask')!.params as { requestId: string }).requestId;
    appendToken(requestId, 'Under ');
    appendToken(requestId, 'the stair [1]');
    let thread = useChat.getState().threads.doc1;
    expect(thread.requestId).toBe(requestId);
    expect(thread.messages.map((m) => [m.role, m.text, m.state])).toEqual([
      ['user', 'Where is the key?', 'done'], ['assistant', 'Under the stair [1]', 'streaming']]);
    finish({ requestId, conversationId: 'c1', answer: 'Under the stair [1].', citations: [citation], stopReason: 'max_tokens',
      nTokens: 7, tokensPerSecond: 5, tokensPerForward: 2.5, firstTokenMs: 10 });
    await done;
    thread = useChat.getState().threads.doc1;
    expect(thread.requestId).toBeNull();
    expect(thread.conversationId).toBe('c1');
    expect(thread.messages[1]).toMatchObject({ text: 'Under the stair [1].', citations: [citation], state: 'done',
      stats: { nTokens: 7, tokensPerSecond: 5, tokensPerForward: 2.5, cutShort: true } });
    expect(fake.calls.find((c) => c.method === 'ask')!.params).toMatchObject({ question: 'Where is the key?', docIds: ['doc1'] });
  });

  it('continues the conversation it is in', async () => {
    fake.handle('ask', (p) => ({ requestId: p.requestId, conversationId: 'c1', answer: 'ok', citations: [], stopReason: 'eos', nTokens: 1,
      tokensPerSecond: 1, tokensPerForward: null, firstTokenMs: 1 }));
    await useChat.getState().ask('doc1', 'first');
    await useChat.getState().ask('doc1', 'second');
    const asks = fake.calls.filter((c) => c.method === 'ask').map((c) => c.params as { conversationId?: string });
    expect(asks[0].conversationId).toBeUndefined();
    expect(asks[1].conversationId).toBe('c1');
  });

  it('stops an answer and keeps the partial text', async () => {
    let fail!: (e: Error) => void;
    fake.handle('ask', () => new Promise((_, reject) => { fail = reject; }));
    fake.handle('cancel', () => {
      fail(new ClientError('CANCELLED', 'cancelled'));
      return { cancelled: true };
    });
    const done = useChat.getState().ask('doc1', 'q');
    await Promise.resolve();
    const requestId = useChat.getState().threads.doc1.requestId!;
    useChat.getState().appendToken(requestId, 'part');
    await useChat.getState().stop('doc1');
    await done;
    const last = useChat.getState().threads.doc1.messages.at(-1)!;
    expect(last).toMatchObject({ text: 'part', state: 'stopped' });
    expect(fake.calls.find((c) => c.method === 'cancel')!.params).toEqual({ requestId });
  });

  it('shows a readable error when the answer fails', async () => {
    fake.handle('ask', () => { throw new ClientError('NOT_READY', '"The Book" has not been read by this model yet'); });
    await useChat.getState().ask('doc1', 'q');
    expect(useChat.getState().threads.doc1.messages.at(-1)).toMatchObject({ state: 'error', error: '"The Book" has not been read by this model yet' });
  });

  it('asks a collection as a whole, without a per-document history', async () => {
    fake.handle('ask', (p) => ({ requestId: p.requestId, conversationId: 'c9', answer: 'ok', citations: [], stopReason: 'eos', nTokens: 1,
      tokensPerSecond: 1, tokensPerForward: null, firstTokenMs: 1 }));
    const key = subjectKey({ collectionId: 'col1' });
    await useChat.getState().loadHistory(key);
    await useChat.getState().ask(key, 'across the shelf?');
    const params = fake.calls.find((c) => c.method === 'ask')!.params as Record<string, unknown>;
    expect(params).toMatchObject({ collectionId: 'col1', question: 'across the shelf?' });
    expect(params.docIds).toBeUndefined();
    expect(fake.calls.some((c) => c.method === 'conversations.list')).toBe(false);
    expect(useChat.getState().threads[key].conversationId).toBe('c9');
  });

  it('opens the latest conversation from the history', async () => {
    fake.handle('conversations.list', () => [
      { id: 'old', docId: 'doc1', collectionId: null, title: 'old', createdAt: '2026-01-01', updatedAt: '2026-01-01', messages: [] },
      { id: 'new', docId: 'doc1', collectionId: null, title: 'new', createdAt: '2026-01-02', updatedAt: '2026-01-03', messages: [] },
    ]);
    fake.handle('conversations.get', ({ conversationId }) => ({ id: conversationId, docId: 'doc1', collectionId: null, title: 'new',
      createdAt: '', updatedAt: '', messages: [{ role: 'user', text: 'q', citations: [], createdAt: '' },
        { role: 'assistant', text: 'a [1]', citations: [citation], createdAt: '' }] }));
    await useChat.getState().loadHistory('doc1');
    const thread = useChat.getState().threads.doc1;
    expect(thread.conversations.map((c) => c.id)).toEqual(['new', 'old']);
    expect(thread.conversationId).toBe('new');
    expect(thread.messages.map((m) => m.text)).toEqual(['q', 'a [1]']);
  });
});
