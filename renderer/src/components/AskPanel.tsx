// Questions about a document, or about a collection as a whole: the conversation, the question
// box, stop, and (for documents) the conversation history.
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import type { CollectionInfo, DocumentInfo, IngestProgress } from '../../../electron/api/types';
import { formatPercent } from '../lib/format';
import { progressView } from '../lib/progress';
import { shortcutLabel } from '../lib/shortcuts';
import { emptyThread, subjectKey, useChat } from '../stores/chat';
import { Message } from './Message';

export const ASK_INPUT_ID = 'ask-input';

/** What is being asked about. */
export interface AskSubject {
  key: string;
  title: string;
  ready: boolean;
  /** Why questions are not open yet. */
  waiting: string;
  hasHistory: boolean;
}

export function documentSubject(doc: DocumentInfo, live?: IngestProgress): AskSubject {
  const view = progressView(doc, live);
  return {
    key: subjectKey({ docId: doc.id }), title: doc.title, ready: doc.status === 'ready', hasHistory: true,
    waiting: `Questions open once the model has read the document${view.fraction !== null && view.active ? ` (${formatPercent(view.fraction)} so far)` : ''}.`,
  };
}

export function collectionSubject(collection: CollectionInfo, docs: DocumentInfo[]): AskSubject {
  const members = docs.filter((d) => d.collectionId === collection.id);
  const unread = members.filter((d) => d.status !== 'ready').length;
  return {
    key: subjectKey({ collectionId: collection.id }), title: collection.name, hasHistory: false,
    ready: members.length > 0 && unread === 0,
    waiting: members.length === 0 ? 'This collection has no documents yet: move documents into it from their page.'
      : `Questions open once the model has read every document of the collection (${unread} still to read).`,
  };
}

function ConversationPicker({ subject }: { subject: AskSubject }) {
  const key = subject.key;
  const thread = useChat((s) => s.threads[key] ?? emptyThread);
  const { openConversation, newConversation } = useChat.getState();
  const busy = thread.requestId !== null;
  return (
    <div className="conversation-bar">
      {subject.hasHistory ? <select aria-label="Conversation" value={thread.conversationId ?? ''} disabled={busy}
        onChange={(e) => {
          const id = e.currentTarget.value;
          if (id) void openConversation(key, id);
          else newConversation(key);
        }}>
        <option value="">New conversation</option>
        {thread.conversations.map((c) => (
          <option key={c.id} value={c.id}>{c.title || 'Untitled'} · {new Date(c.updatedAt).toLocaleDateString()}</option>
        ))}
      </select> : <span className="conversation-title">{thread.messages.length ? 'This conversation' : 'New conversation'}</span>}
      <button type="button" className="secondary" disabled={busy || (!thread.conversationId && !thread.messages.length)}
        onClick={() => newConversation(key)}>New</button>
    </div>
  );
}

export function AskPanel({ subject }: { subject: AskSubject }) {
  const key = subject.key;
  const thread = useChat((s) => s.threads[key] ?? emptyThread);
  const { ask, stop, loadHistory } = useChat.getState();
  const [question, setQuestion] = useState('');
  const log = useRef<HTMLOListElement>(null);
  const { ready, title } = subject;
  const busy = thread.requestId !== null;

  useEffect(() => {
    if (!thread.historyLoaded) void loadHistory(key);
  }, [key, thread.historyLoaded, loadHistory]);

  // Follow the answer as it streams in.
  const last = thread.messages.at(-1);
  useEffect(() => {
    log.current?.lastElementChild?.scrollIntoView({ block: 'end' });
  }, [thread.messages.length, last?.text]);

  const submit = (e?: FormEvent) => {
    e?.preventDefault();
    if (!ready || busy || !question.trim()) return;
    void ask(key, question);
    setQuestion('');
  };
  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) submit(e);
  };

  return (
    <section className="ask-panel" aria-label={`Ask about ${title}`}>
      <ConversationPicker subject={subject} />
      {thread.messages.length ? (
        <ol className="messages" ref={log} role="log" aria-label="Conversation" aria-live="polite">
          {thread.messages.map((m) => <Message key={m.id} message={m} />)}
        </ol>
      ) : (
        <div className="panel-empty">
          {ready ? (
            <>
              <p><strong>Ask anything about {title}.</strong></p>
              <p>Folio answers from the whole {subject.hasHistory ? 'document' : 'collection'} and cites the passages it used
                as [1], [2]…; click a number to open that passage in the reader.</p>
            </>
          ) : <p>{subject.waiting}</p>}
        </div>
      )}
      <form className="ask-form" onSubmit={submit}>
        <textarea id={ASK_INPUT_ID} value={question} rows={3} disabled={!ready}
          aria-label={`Question about ${title}`}
          placeholder={ready ? `Ask about ${title}… (${shortcutLabel('k')}; Enter sends, Shift+Enter adds a line)` : 'Available once the text has been read'}
          onChange={(e) => setQuestion(e.currentTarget.value)} onKeyDown={onKeyDown} />
        {busy ? (
          <button type="button" className="danger" onClick={() => void stop(key)} title="Stop the answer (Esc)">Stop</button>
        ) : (
          <button type="submit" disabled={!ready || !question.trim()}>Ask</button>
        )}
      </form>
    </section>
  );
}
