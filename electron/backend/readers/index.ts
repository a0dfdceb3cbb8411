import { basename } from 'node:path';
import { readCodeFile, readCodeFolder } from './code';
import { detectFormat, unsupportedKind } from './detect';
import { readDocx } from './docx';
import { readEpub } from './epub';
import { ReaderError, throwIfAborted } from './errors';
import { readHtml } from './html';
import { readMarkdown } from './markdown';
import { readPdf } from './pdf';
import { checkSize, readHead, statPath, type SourceFile } from './source';
import { readText } from './text';
import type { ReadOptions, ReadResult } from './types';

export type { DocumentFormat, PageBreak, ReadOptions, ReadResult, Section } from './types';
export { ReaderError, type ReaderErrorCode } from './errors';
export { detectFormat } from './detect';
export { lineOfOffset } from './code';

const HEAD_BYTES = 4096;

/**
 * Reads a document (or a folder of source code) into plain text with
 * sections and pages. Throws ReaderError for unreadable input, and an
 * AbortError when options.signal fires.
 */
export async function readDocument(path: string, options: ReadOptions = {}): Promise<ReadResult> {
  const name = basename(path) || path;
  throwIfAborted(options.signal, name);
  const stats = await statPath(path);
  if (stats.isDirectory()) return readCodeFolder(path, options);
  if (!stats.isFile()) throw new ReaderError('UNSUPPORTED', `${name} is not a regular file`);
  if (stats.size === 0) throw new ReaderError('EMPTY', `${name} is empty`);
  checkSize(name, stats.size, options);

  const head = await readHead(path, HEAD_BYTES);
  const format = detectFormat(path, head);
  if (format === null) {
    throw new ReaderError('UNSUPPORTED', `${name} is ${unsupportedKind(path, head)}; Folio can't read it`);
  }
  const file: SourceFile = { path, name, size: stats.size };
  switch (format) {
    case 'text':
      return readText(file, options);
    case 'markdown':
      return readMarkdown(file, options);
    case 'pdf':
      return readPdf(file, options);
    case 'epub':
      return readEpub(file, options);
    case 'docx':
      return readDocx(file, options);
    case 'html':
      return readHtml(file, options);
    case 'code':
      return readCodeFile(file, options);
  }
}
