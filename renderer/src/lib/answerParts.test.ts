import { describe, expect, it } from 'vitest';
import { answerParts, displayText } from './answerParts';

describe('answerParts', () => {
  it('turns known [n] into references and keeps other brackets as text', () => {
    expect(answerParts('The key [1] is under [2], see [9].', new Set([1, 2]))).toEqual([
      { kind: 'text', text: 'The key ' }, { kind: 'cite', n: 1 }, { kind: 'text', text: ' is under ' },
      { kind: 'cite', n: 2 }, { kind: 'text', text: ', see [9].' },
    ]);
  });

  it('handles an answer without references', () => {
    expect(answerParts('plain', new Set([1]))).toEqual([{ kind: 'text', text: 'plain' }]);
    expect(answerParts('', new Set())).toEqual([]);
  });
});

describe('displayText', () => {
  it('drops control characters but keeps line breaks and tabs', () => {
    expect(displayText('a\u0000b\u001bc\nd\te\ufffd')).toBe('abc\nd\te');
  });
});
