import mammoth from 'mammoth';
import { ReaderError, throwIfAborted } from './errors';
import { htmlToText } from './html-text';
import { cleanLabel, sectionsFromHeadings } from './sections';
import { readBytes, titleFromName, type SourceFile } from './source';
import type { ReadOptions, ReadResult } from './types';

/** Office files saved with a password are OLE compound files, not ZIP archives. */
const COMPOUND_FILE_MAGIC = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);
const TITLE_CLASS = 'document-title';

// Images are dropped rather than inlined as base64 (which only costs memory).
const dropImages = mammoth.images.imgElement(() => Promise.resolve({ src: '' }));

export async function readDocx(file: SourceFile, options: ReadOptions): Promise<ReadResult> {
  const bytes = await readBytes(file, options);
  if (bytes.subarray(0, COMPOUND_FILE_MAGIC.length).equals(COMPOUND_FILE_MAGIC)) {
    throw new ReaderError(
      'ENCRYPTED',
      `${file.name} is password-protected (or an old Word file renamed to .docx); Folio can't open it`,
    );
  }
  let html: string;
  try {
    const converted = await mammoth.convertToHtml(
      { buffer: bytes },
      { convertImage: dropImages, styleMap: [`p[style-name='Title'] => h1.${TITLE_CLASS}:fresh`] },
    );
    html = converted.value;
  } catch {
    throw new ReaderError('CORRUPT', `${file.name} is damaged or is not a Word document`);
  }
  throwIfAborted(options.signal, file.name);
  const { text, headings } = htmlToText(html);
  if (!/\S/.test(text)) throw new ReaderError('NO_TEXT', `${file.name} has no text`);
  const titleHtml = new RegExp(`<h1 class="${TITLE_CLASS}">([\\s\\S]*?)</h1>`).exec(html)?.[1];
  const title = titleHtml ? cleanLabel(htmlToText(`<p>${titleHtml}</p>`).text) : '';
  return {
    title: title || titleFromName(file.name),
    format: 'docx',
    text,
    sections: sectionsFromHeadings(headings, text.length, () => 'heading'),
    pages: [],
    sourceBytes: file.size,
    warnings: [],
  };
}
