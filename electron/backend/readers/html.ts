import { decodeMarkup } from './encoding';
import { ReaderError } from './errors';
import { htmlTitle, htmlToText } from './html-text';
import { sectionsFromHeadings } from './sections';
import { readBytes, titleFromName, type SourceFile } from './source';
import type { ReadOptions, ReadResult } from './types';

const MAX_SECTION_LEVEL = 3;

export async function readHtml(file: SourceFile, options: ReadOptions): Promise<ReadResult> {
  const { text: html } = decodeMarkup(await readBytes(file, options), file.name);
  if (!/\S/.test(html)) throw new ReaderError('EMPTY', `${file.name} is empty`);
  const { text, headings } = htmlToText(html);
  if (!/\S/.test(text)) throw new ReaderError('NO_TEXT', `${file.name} has no readable text`);
  const sectionHeadings = headings.filter((h) => h.level <= MAX_SECTION_LEVEL);
  return {
    title: htmlTitle(html) ?? headings.find((h) => h.level === 1)?.label ?? titleFromName(file.name),
    format: 'html',
    text,
    sections: sectionsFromHeadings(sectionHeadings, text.length, () => 'heading'),
    pages: [],
    sourceBytes: file.size,
    warnings: [],
  };
}
