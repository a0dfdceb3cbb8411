// A document's summaries as a Markdown file: the whole document, then each section with its
// key passages quoted.
import type { SectionSummary } from '../../../electron/api/types';
import { displayText } from './answerParts';

function quote(text: string): string {
  return `> ${displayText(text).replace(/\s+/g, ' ').trim()}`;
}

function section(summary: SectionSummary, heading: string): string {
  const lines = [`${heading} ${summary.label}`, '', displayText(summary.text).trim() || '_(empty)_', ''];
  if (summary.keyPassages.length) {
    lines.push('Key passages:', '');
    for (const k of summary.keyPassages) lines.push(quote(k.text), `> — characters ${k.charStart}–${k.charEnd}`, '');
  }
  return lines.join('\n');
}

export function summaryMarkdown(title: string, document: SectionSummary | null, sections: readonly SectionSummary[]): string {
  const parts = [`# Summary of ${title}`, ''];
  if (document) parts.push(section({ ...document, label: 'The whole document' }, '##'));
  if (sections.length) {
    parts.push('## By section', '');
    for (const s of sections) parts.push(section(s, '###'));
  }
  return `${parts.join('\n').trimEnd()}\n`;
}

export function markdownFileName(title: string): string {
  const base = title.replace(/[^\p{L}\p{N} ._-]+/gu, '').trim().replace(/\s+/g, '-').slice(0, 80) || 'document';
  return `${base}-summary.md`;
}
