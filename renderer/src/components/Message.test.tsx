import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../stores/chat';
import { answerStatsText, Message } from './Message';
import { speculativeMeasurementText } from './SettingsDialog';

const answer = (change: Partial<ChatMessage>): ChatMessage =>
  ({ id: 'm1', role: 'assistant', text: 'Under the stair.', citations: [], state: 'done', ...change });

describe('how an answer was decoded', () => {
  it('a fresh answer says its length and speed, and the tokens per pass of speculative decoding', () => {
    render(<ul><Message message={answer({ stats: { nTokens: 120, tokensPerSecond: 9870, tokensPerForward: 2.44, cutShort: false } })} /></ul>);
    expect(screen.getByText('120 tokens at 9.9k tokens/s, 2.4 per model pass (speculative decoding).')).toBeTruthy();
  });

  it('plain decoding (or no accepted draft) has no per-pass figure; an answer at the length limit says it may be cut short', () => {
    const text = answerStatsText({ nTokens: 1, tokensPerSecond: 800, tokensPerForward: null, cutShort: true });
    expect(text).toBe('1 token at 800 tokens/s. The answer reached the longest-answer setting and may be cut short.');
    // Speculative decoding on, but every step was a plain one: nothing to report about it.
    expect(answerStatsText({ nTokens: 5, tokensPerSecond: 800, tokensPerForward: 1.0, cutShort: false })).toBe('5 tokens at 800 tokens/s.');
  });

  it('answers from the history and unfinished ones show no figures', () => {
    const { container } = render(<ul>
      <Message message={answer({})} />
      <Message message={answer({ id: 'm2', state: 'streaming', stats: { nTokens: 3, tokensPerSecond: 9, tokensPerForward: null, cutShort: false } })} />
    </ul>);
    expect(container.querySelector('.answer-stats')).toBeNull();
  });
});

describe('the automatic speculative setting', () => {
  const base = { plainTokensPerSecond: null, plainRuns: 0, speculativeTokensPerSecond: null, speculativeRuns: 0, faster: null, exploreEvery: 8 };

  it('says it is still measuring, with what it has so far', () => {
    expect(speculativeMeasurementText(base)).toBe('Automatic is still measuring on your answers and summaries, alternating ' +
      'between the two ways: no speculative decode yet, no plain decode yet.');
    expect(speculativeMeasurementText({ ...base, speculativeTokensPerSecond: 2300, speculativeRuns: 1 }))
      .toContain('2.3k tokens/s speculative (1 run), no plain decode yet.');
  });

  it('once settled, says what it measured and what answers therefore use', () => {
    expect(speculativeMeasurementText({ ...base, plainTokensPerSecond: 1000, plainRuns: 3, speculativeTokensPerSecond: 2300,
      speculativeRuns: 4, faster: true })).toBe('Measured on your answers and summaries: 2.3k tokens/s speculative (4 runs), ' +
      '1.0k tokens/s plain (3 runs), 2.30×, so they use it (one in 8 tries the other way to keep this current).');
    expect(speculativeMeasurementText({ ...base, plainTokensPerSecond: 12000, plainRuns: 5, speculativeTokensPerSecond: 11400,
      speculativeRuns: 3, faster: false })).toContain('0.95×, so they decode plainly');
  });

  it('a model without extra heads always decodes plainly', () => {
    expect(speculativeMeasurementText(null)).toBe('This model has no extra prediction heads, so it always decodes plainly.');
  });
});
