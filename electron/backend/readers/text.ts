import { decodeBytes, normaliseNewlines } from './encoding';
import { ReaderError } from './errors';
import { plainTextSections } from './plain-chapters';
import { readBytes, titleFromName, type SourceFile } from './source';
import type { ReadOptions, ReadResult } from './types';

export interface DecodedFile {
  text: string;
  warnings: string[];
}

/** Reads, decodes and LF-normalises a text file; empty or whitespace-only => EMPTY. */
export async function readTextFile(file: SourceFile, options: ReadOptions): Promise<DecodedFile> {
  const decoded = decodeBytes(await readBytes(file, options), file.name);
  const text = normaliseNewlines(decoded.text);
  const warnings = decoded.replacedInvalid
    ? [`${file.name} has bytes that are not valid UTF-8; they were replaced with \u201c\ufffd\u201d`]
    : [];
  if (!/\S/.test(text)) throw new ReaderError('EMPTY', `${file.name} is empty`);
  return { text, warnings };
}

/** Plain text (txt, log, anything unknown that is not binary). */
export async function readText(file: SourceFile, options: ReadOptions): Promise<ReadResult> {
  const { text, warnings } = await readTextFile(file, options);
  return {
    title: titleFromName(file.name),
    format: 'text',
    text,
    sections: plainTextSections(text),
    pages: [],
    sourceBytes: file.size,
    warnings,
  };
}
