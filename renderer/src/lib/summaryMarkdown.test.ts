import { describe, expect, it } from 'vitest';
import { markdownFileName, summaryMarkdown } from './summaryMarkdown';

describe('summaryMarkdown', () => {
  it('writes the whole-document summary, then the sections with quoted key passages', () => {
    const md = summaryMarkdown('The Book',
      { sectionIdx: -1, label: 'The Book', text: 'A story about a key.', keyPassages: [], cached: false },
      [{ sectionIdx: 2, label: 'Chapter 3', text: 'The key is hidden.', cached: true,
        keyPassages: [{ passageIdx: 7, text: 'The cartographer hid\nthe key.', charStart: 100, charEnd: 130, score: 1 }] }]);
    expect(md).toBe([
      '# Summary of The Book', '', '## The whole document', '', 'A story about a key.', '',
      '## By section', '', '### Chapter 3', '', 'The key is hidden.', '', 'Key passages:', '',
      '> The cartographer hid the key.', '> — characters 100–130', '',
    ].join('\n'));
  });

  it('names the file after the title', () => {
    expect(markdownFileName('War & Peace: vol. 1')).toBe('War-Peace-vol.-1-summary.md');
    expect(markdownFileName('???')).toBe('document-summary.md');
  });
});
