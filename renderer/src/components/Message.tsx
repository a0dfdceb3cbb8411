// One message of a conversation; an answer shows its citations inline and as a list, and a fresh
// one how it was decoded.
import { useMemo } from 'react';
import { answerParts, displayText } from '../lib/answerParts';
import { formatRate, formatTokens } from '../lib/format';
import type { AnswerStats, ChatMessage } from '../stores/chat';
import { CitationChip, CitationRef } from './CitationChip';

/**
 * "120 tokens at 9.9k tokens/s, 2.4 per model pass (speculative decoding)", plus a cut-short note.
 * The per-pass figure only when drafts were accepted: with speculative decoding on, the runtime
 * still takes plain steps where drafting does not pay.
 */
export function answerStatsText(stats: AnswerStats): string {
  let text = `${formatTokens(stats.nTokens)} at ${formatRate(stats.tokensPerSecond)}`;
  if (stats.tokensPerForward !== null && stats.tokensPerForward >= 1.05) {
    text += `, ${stats.tokensPerForward.toFixed(1)} per model pass (speculative decoding)`;
  }
  text += '.';
  if (stats.cutShort) text += ' The answer reached the longest-answer setting and may be cut short.';
  return text;
}

export function Message({ message }: { message: ChatMessage }) {
  const byNumber = useMemo(() => new Map(message.citations.map((c) => [c.n, c])), [message.citations]);
  const parts = useMemo(() => answerParts(displayText(message.text), new Set(byNumber.keys())), [message.text, byNumber]);
  if (message.role === 'user') {
    return <li className="message user"><span className="visually-hidden">You asked: </span>{message.text}</li>;
  }
  return (
    <li className={`message assistant ${message.state}`} aria-busy={message.state === 'streaming'}>
      <span className="visually-hidden">Folio answered: </span>
      {message.text || message.state !== 'streaming' ? (
        <div className="answer-text">
          {parts.map((p, i) => (p.kind === 'text' ? <span key={i}>{p.text}</span> : <CitationRef key={i} citation={byNumber.get(p.n)!} />))}
          {message.state === 'streaming' && <span className="cursor" aria-hidden="true" />}
        </div>
      ) : (
        <div className="answer-text thinking">Looking through the document…</div>
      )}
      {message.state === 'stopped' && <p className="hint">Stopped. This partial answer is not saved in the history.</p>}
      {message.state === 'done' && message.stats && <p className="hint answer-stats">{answerStatsText(message.stats)}</p>}
      {message.state === 'error' && <p className="error-text">{message.error}</p>}
      {message.citations.length > 0 && (
        <div className="sources">
          <h4>Sources</h4>
          <ul className="cite-list">
            {message.citations.map((c) => <CitationChip key={c.n} citation={c} />)}
          </ul>
        </div>
      )}
    </li>
  );
}
