import { cleanLabel, sectionsFromHeadings, type Heading } from './sections';
import { readTextFile } from './text';
import { titleFromName, type SourceFile } from './source';
import type { ReadOptions, ReadResult } from './types';

const ATX = /^ {0,3}(#{1,6})(?=[ \t]|$)(.*)$/;
const SETEXT_UNDERLINE = /^ {0,3}(=+|-+)[ \t]*$/;
const FENCE = /^ {0,3}(`{3,}|~{3,})/;
/** Lines that start a block other than a paragraph, so they cannot take a setext underline. */
const NOT_PARAGRAPH = /^(?: {0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)| {0,3}>| {0,3}\||(?: {4}|\t))/;
const THEMATIC_BREAK = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
/** Lines that end a paragraph without a blank line: list items and block quotes. */
const INTERRUPTS_PARAGRAPH = /^ {0,3}(?:[-*+][ \t]|1[.)][ \t]|>)/;
/** Only the start of a paragraph is kept for a setext heading's label. */
const MAX_SETEXT_LINES = 4;

export interface MarkdownStructure {
  headings: Heading[];
  frontMatterTitle: string | null;
}

/** ATX and setext headings, outside fenced code and YAML front matter. */
export function markdownHeadings(text: string): MarkdownStructure {
  const headings: Heading[] = [];
  let frontMatterTitle: string | null = null;
  let pos = 0;

  if (text.startsWith('---\n')) {
    const close = /^(?:---|\.\.\.)[ \t]*$/m;
    const rest = text.slice(4);
    const end = close.exec(rest);
    if (end) {
      const yaml = rest.slice(0, end.index);
      const title = /^title:[ \t]*(.+)$/m.exec(yaml);
      if (title) frontMatterTitle = cleanLabel(title[1].replace(/^(["'])(.*)\1$/, '$2'));
      pos = 4 + end.index + end[0].length + 1;
    }
  }

  let fence: string | null = null;
  // The paragraph being read, which a setext underline would turn into a heading.
  let paragraph: { start: number; lines: string[] } | null = null;
  while (pos <= text.length) {
    let end = text.indexOf('\n', pos);
    if (end === -1) end = text.length;
    const line = text.slice(pos, end);

    if (fence !== null) {
      const close = FENCE.exec(line);
      if (close && close[1][0] === fence[0] && close[1].length >= fence.length && /^[ \t]*$/.test(line.slice(close[0].length))) {
        fence = null;
      }
    } else if (FENCE.test(line)) {
      fence = FENCE.exec(line)![1];
      paragraph = null;
    } else if (/^[ \t]*$/.test(line)) {
      paragraph = null;
    } else {
      const atx = ATX.exec(line);
      const underline = paragraph !== null ? SETEXT_UNDERLINE.exec(line) : null;
      if (atx) {
        const label = cleanLabel(atx[2].replace(/(?:^|[ \t]+)#+[ \t]*$/, ''));
        if (label) headings.push({ label, level: atx[1].length, charStart: pos + line.indexOf('#') });
        paragraph = null;
      } else if (underline && paragraph !== null) {
        const label = cleanLabel(paragraph.lines.join(' '));
        if (label) headings.push({ label, level: underline[1][0] === '=' ? 1 : 2, charStart: paragraph.start });
        paragraph = null;
      } else if (paragraph !== null && !INTERRUPTS_PARAGRAPH.test(line)) {
        if (paragraph.lines.length < MAX_SETEXT_LINES) paragraph.lines.push(line);
      } else if (!NOT_PARAGRAPH.test(line) && !THEMATIC_BREAK.test(line)) {
        paragraph = { start: pos + line.search(/\S/), lines: [line] };
      } else {
        paragraph = null;
      }
    }
    pos = end + 1;
  }
  return { headings, frontMatterTitle };
}

export async function readMarkdown(file: SourceFile, options: ReadOptions): Promise<ReadResult> {
  const { text, warnings } = await readTextFile(file, options);
  const { headings, frontMatterTitle } = markdownHeadings(text);
  const firstTop = headings.find((h) => h.level === 1);
  return {
    title: frontMatterTitle ?? firstTop?.label ?? titleFromName(file.name),
    format: 'markdown',
    text,
    sections: sectionsFromHeadings(headings, text.length, () => 'heading'),
    pages: [],
    sourceBytes: file.size,
    warnings,
  };
}
