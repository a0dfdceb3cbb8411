// Conversations per subject (a document, or a collection asked as a whole): history from the
// backend, the question being answered with its streamed text, stop. A stopped answer keeps
// what had arrived (the backend does not store it). Threads are keyed by `subjectKey`.
import { create } from 'zustand';
import type { AnswerResult, Citation, ConversationInfo } from '../../../electron/api/types';
import { client } from '../api/current';
import { describeError, isCancellation } from '../lib/errors';
import { newRequestId } from '../lib/ids';

/** How an answer was decoded (answers from the history have none). */
export interface AnswerStats extends Pick<AnswerResult, 'nTokens' | 'tokensPerSecond' | 'tokensPerForward'> {
  /** It stopped at the longest-answer setting, not where the model ended it. */
  cutShort: boolean;
}

export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  text: string;
  citations: Citation[];
  state: 'done' | 'streaming' | 'stopped' | 'error';
  error?: string;
  stats?: AnswerStats;
}

export interface ChatThread {
  conversationId: string | null;
  messages: ChatMessage[];
  requestId: string | null;
  conversations: ConversationInfo[];
  historyLoaded: boolean;
}

interface ChatState {
  threads: Record<string, ChatThread>;
  /** requestId -> docId of the answers being streamed. */
  streams: Record<string, string>;
  loadHistory(docId: string): Promise<void>;
  openConversation(docId: string, conversationId: string): Promise<void>;
  newConversation(docId: string): void;
  ask(docId: string, question: string): Promise<void>;
  appendToken(requestId: string, text: string): void;
  stop(docId: string): Promise<void>;
}

const COLLECTION = 'collection:';

/** The thread key of a document (its id) or of a collection. */
export function subjectKey(subject: { docId: string } | { collectionId: string }): string {
  return 'docId' in subject ? subject.docId : COLLECTION + subject.collectionId;
}

function askTarget(key: string): { docIds: string[] } | { collectionId: string } {
  return key.startsWith(COLLECTION) ? { collectionId: key.slice(COLLECTION.length) } : { docIds: [key] };
}

export const emptyThread: ChatThread = { conversationId: null, messages: [], requestId: null, conversations: [], historyLoaded: false };

let messageSeq = 0;
const messageId = () => `m${++messageSeq}`;

function fromConversation(conversation: ConversationInfo): ChatMessage[] {
  return (conversation.messages ?? []).map((m) => ({ id: messageId(), role: m.role, text: m.text, citations: m.citations, state: 'done' }));
}

export const useChat = create<ChatState>()((set, get) => {
  const thread = (docId: string) => get().threads[docId] ?? emptyThread;
  const update = (docId: string, change: (t: ChatThread) => Partial<ChatThread>) =>
    set((s) => {
      const current = s.threads[docId] ?? emptyThread;
      return { threads: { ...s.threads, [docId]: { ...current, ...change(current) } } };
    });
  const updateMessage = (docId: string, id: string, change: Partial<ChatMessage>) =>
    update(docId, (t) => ({ messages: t.messages.map((m) => (m.id === id ? { ...m, ...change } : m)) }));

  async function refreshList(docId: string): Promise<ConversationInfo[]> {
    const list = await client().call('conversations.list', { docId });
    const conversations = [...list].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
    update(docId, () => ({ conversations, historyLoaded: true }));
    return conversations;
  }

  return {
    threads: {},
    streams: {},

    async loadHistory(docId) {
      // The backend lists conversations per document only.
      if (docId.startsWith(COLLECTION)) {
        update(docId, () => ({ historyLoaded: true }));
        return;
      }
      try {
        const conversations = await refreshList(docId);
        const t = thread(docId);
        if (!t.conversationId && !t.messages.length && conversations.length) await get().openConversation(docId, conversations[0].id);
      } catch (error) {
        update(docId, () => ({ historyLoaded: true }));
        // Without history the panel still works; say why it is empty.
        update(docId, (t) => ({ messages: t.messages.length ? t.messages : [{ id: messageId(), role: 'assistant', text: '',
          citations: [], state: 'error', error: `The conversation history could not be loaded: ${describeError(error)}` }] }));
      }
    },

    async openConversation(docId, conversationId) {
      if (thread(docId).requestId) return;
      try {
        const conversation = await client().call('conversations.get', { conversationId });
        update(docId, () => ({ conversationId, messages: fromConversation(conversation) }));
      } catch (error) {
        update(docId, (t) => ({ messages: [...t.messages, { id: messageId(), role: 'assistant', text: '', citations: [],
          state: 'error', error: describeError(error) }] }));
      }
    },

    newConversation(docId) {
      if (thread(docId).requestId) return;
      update(docId, () => ({ conversationId: null, messages: [] }));
    },

    async ask(docId, question) {
      const text = question.trim();
      if (!text || thread(docId).requestId) return;
      const requestId = newRequestId('a');
      const answerId = messageId();
      const { conversationId } = thread(docId);
      update(docId, (t) => ({
        requestId,
        messages: [...t.messages,
          { id: messageId(), role: 'user', text, citations: [], state: 'done' },
          { id: answerId, role: 'assistant', text: '', citations: [], state: 'streaming' }],
      }));
      set((s) => ({ streams: { ...s.streams, [requestId]: docId } }));
      try {
        const result = await client().call('ask', { requestId, question: text, ...askTarget(docId), ...(conversationId ? { conversationId } : {}) });
        updateMessage(docId, answerId, { text: result.answer, citations: result.citations, state: 'done',
          stats: { nTokens: result.nTokens, tokensPerSecond: result.tokensPerSecond, tokensPerForward: result.tokensPerForward,
            cutShort: result.stopReason === 'max_tokens' } });
        update(docId, () => ({ conversationId: result.conversationId }));
        if (!docId.startsWith(COLLECTION)) void refreshList(docId).catch(() => undefined);
      } catch (error) {
        if (isCancellation(error)) updateMessage(docId, answerId, { state: 'stopped' });
        else updateMessage(docId, answerId, { state: 'error', error: describeError(error) });
      } finally {
        update(docId, () => ({ requestId: null }));
        set((s) => {
          const { [requestId]: _done, ...streams } = s.streams;
          return { streams };
        });
      }
    },

    appendToken(requestId, text) {
      const docId = get().streams[requestId];
      if (!docId) return;
      update(docId, (t) => ({
        messages: t.messages.map((m, i) => (i === t.messages.length - 1 && m.state === 'streaming' ? { ...m, text: m.text + text } : m)),
      }));
    },

    async stop(docId) {
      const { requestId } = thread(docId);
      if (!requestId) return;
      try {
        await client().call('cancel', { requestId });
      } catch {
        // It may have just finished; the answer then stands.
      }
    },
  };
});
