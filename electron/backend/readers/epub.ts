import { posix } from 'node:path';
import { EPub } from 'epub2';
import { decodeMarkup } from './encoding';
import { ReaderError, throwIfAborted } from './errors';
import { htmlToText } from './html-text';
import { cleanLabel } from './sections';
import { checkSize, titleFromName, type SourceFile } from './source';
import type { ReadOptions, ReadResult, Section } from './types';

type ManifestItem = EPub['manifest'][string] & { properties?: string };

const CHAPTER_SEPARATOR = '\n\n';
const FALLBACK_LABEL_LENGTH = 60;
/** Encryption algorithms that only obfuscate embedded fonts; the text stays readable. */
const FONT_OBFUSCATION = new Set(['http://www.idpf.org/2008/embedding', 'http://ns.adobe.com/pdf/enc#RC']);

/** Archive path without fragment or percent-encoding, "a/./b/../c" resolved. */
function normaliseHref(href: string): string {
  let path = href.split('#')[0];
  try {
    path = decodeURIComponent(path);
  } catch {
    // Keep the raw path when it is not valid percent-encoding.
  }
  return posix.normalize(path).replace(/^\/+/, '');
}

function readEntry(book: EPub, name: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    try {
      book.zip.readFile(name, (error, data) => {
        if (error || !data) reject(new Error(String(error ?? `no data for ${name}`)));
        else resolve(data);
      });
    } catch (error) {
      reject(error);
    }
  });
}

function entryName(book: EPub, wanted: string): string | null {
  const lower = wanted.toLowerCase();
  return book.zip.names.find((n) => n.toLowerCase() === lower) ?? null;
}

function openError(error: unknown, name: string): ReaderError {
  const detail = error instanceof Error ? error.message : String(error);
  const why = /^Invalid\/missing file/.test(detail) ? 'it is not a readable ZIP archive' : detail.toLowerCase();
  return new ReaderError('CORRUPT', `${name} is damaged or is not an EPUB book (${why})`);
}

/** DRM encrypts the chapters themselves; font obfuscation does not matter for reading. */
async function checkNotEncrypted(book: EPub, name: string): Promise<void> {
  const entry = entryName(book, 'META-INF/encryption.xml');
  if (!entry) return;
  const xml = (await readEntry(book, entry).catch(() => Buffer.alloc(0))).toString('utf8');
  for (const block of xml.matchAll(/<(?:\w+:)?EncryptedData\b[\s\S]*?<\/(?:\w+:)?EncryptedData>/g)) {
    const algorithm = /<(?:\w+:)?EncryptionMethod[^>]*\bAlgorithm\s*=\s*["']([^"']+)["']/.exec(block[0])?.[1];
    const uri = /<(?:\w+:)?CipherReference[^>]*\bURI\s*=\s*["']([^"']+)["']/.exec(block[0])?.[1] ?? '';
    if (algorithm && !FONT_OBFUSCATION.has(algorithm) && /\.(?:x?html?|xml)$/i.test(uri)) {
      throw new ReaderError('ENCRYPTED', `${name} is protected by DRM; Folio can only read DRM-free books`);
    }
  }
}

function decodeLabel(html: string): string {
  return cleanLabel(htmlToText(`<p>${html}</p>`).text);
}

/** First TOC title for each archive path, from the EPUB 3 navigation document or the NCX. */
async function tableOfContents(book: EPub): Promise<Map<string, string>> {
  const titles = new Map<string, string>();
  const add = (baseDir: string, href: string, label: string): void => {
    if (!label || /^[a-z][\w+.-]*:/i.test(href)) return;
    const key = normaliseHref(posix.join(baseDir, href));
    if (!titles.has(key)) titles.set(key, label);
  };

  const nav = Object.values(book.manifest as Record<string, ManifestItem>).find((item) =>
    /(?:^|\s)nav(?:\s|$)/.test(item.properties ?? ''),
  );
  if (nav?.href) {
    const html = (await readEntry(book, nav.href).catch(() => Buffer.alloc(0))).toString('utf8');
    const navs = [...html.matchAll(/<nav\b([^>]*)>([\s\S]*?)<\/nav>/gi)];
    const toc = navs.find((m) => /epub:type\s*=\s*["'][^"']*\btoc\b/i.test(m[1])) ?? navs[0];
    if (toc) {
      const dir = posix.dirname(nav.href);
      for (const link of toc[2].matchAll(/<a\b[^>]*\bhref\s*=\s*["']([^"']*)["'][^>]*>([\s\S]*?)<\/a>/gi)) {
        add(dir, link[1], decodeLabel(link[2]));
      }
    }
  }

  const ncx = book.spine.toc?.href;
  if (titles.size === 0 && ncx) {
    const xml = (await readEntry(book, ncx).catch(() => Buffer.alloc(0))).toString('utf8');
    const dir = posix.dirname(ncx);
    const point =
      /<(?:\w+:)?navLabel\b[^>]*>\s*<(?:\w+:)?text\b[^>]*>([\s\S]*?)<\/(?:\w+:)?text>[\s\S]*?<(?:\w+:)?content\b[^>]*\bsrc\s*=\s*["']([^"']*)["']/g;
    for (const match of xml.matchAll(point)) add(dir, match[2], decodeLabel(match[1]));
  }
  return titles;
}

function isChapterDocument(item: ManifestItem): boolean {
  const type = (item['media-type'] ?? item.mediaType ?? '').toLowerCase();
  if (type === 'application/xhtml+xml' || type === 'text/html') return true;
  return type === '' && /\.x?html?$/i.test(item.href ?? '');
}

function firstLine(text: string): string {
  const line = text.slice(0, 500).split('\n').find((l) => /\S/.test(l)) ?? '';
  const label = cleanLabel(line);
  return label.length > FALLBACK_LABEL_LENGTH ? label.slice(0, FALLBACK_LABEL_LENGTH - 1).trimEnd() + '…' : label;
}

export async function readEpub(file: SourceFile, options: ReadOptions): Promise<ReadResult> {
  checkSize(file.name, file.size, options);
  throwIfAborted(options.signal, file.name);
  const warnings: string[] = [];
  let book: EPub;
  try {
    book = await EPub.createAsync(file.path);
  } catch (error) {
    // The NCX is parsed last: when only it is broken, the book itself is still readable.
    const partial = (error as { epub?: EPub } | null)?.epub;
    if (!partial?.spine?.toc || !(partial.flow?.length > 0)) throw openError(error, file.name);
    book = partial;
    warnings.push(`the table of contents of ${file.name} could not be read`);
  }
  await checkNotEncrypted(book, file.name);
  const titles = await tableOfContents(book);
  if (!book.flow.some((item: ManifestItem) => item.href && isChapterDocument(item))) {
    throw new ReaderError('CORRUPT', `${file.name} is damaged or is not an EPUB book (it lists no chapters)`);
  }

  const parts: string[] = [];
  const sections: Section[] = [];
  const unreadable: string[] = [];
  let offset = 0;
  for (const item of book.flow as ManifestItem[]) {
    throwIfAborted(options.signal, file.name);
    if (!item.href || !isChapterDocument(item)) continue;
    let chapter: ReturnType<typeof htmlToText>;
    try {
      const { text: html } = decodeMarkup(await readEntry(book, item.href), item.href);
      chapter = htmlToText(html);
    } catch {
      unreadable.push(posix.basename(item.href));
      continue;
    }
    const lead = chapter.text.search(/\S/);
    if (lead === -1) continue;
    const body = chapter.text.slice(lead).trimEnd();
    if (parts.length > 0) {
      parts.push(CHAPTER_SEPARATOR);
      offset += CHAPTER_SEPARATOR.length;
    }
    const start = offset;
    parts.push(body);
    offset += body.length;

    const label = titles.get(normaliseHref(item.href)) ?? chapter.headings[0]?.label;
    const previous = sections[sections.length - 1];
    if (!label && previous) {
      // A continuation file (e.g. a chapter split in two) belongs to the chapter before it.
      previous.charEnd = offset;
    } else {
      sections.push({ label: label ?? firstLine(body), kind: 'chapter', level: 1, charStart: start, charEnd: offset });
    }
  }
  const text = parts.join('');
  if (!/\S/.test(text)) {
    throw new ReaderError('NO_TEXT', `${file.name} has no text (only images?); Folio needs text to read`);
  }
  if (unreadable.length > 0) {
    const more = unreadable.length > 3 ? ', …' : '';
    const files = unreadable.length === 1 ? 'file' : 'files';
    warnings.push(`${unreadable.length} chapter ${files} could not be read (${unreadable.slice(0, 3).join(', ')}${more})`);
  }
  return {
    title: cleanLabel(book.metadata.title ?? '') || titleFromName(file.name),
    format: 'epub',
    text,
    sections,
    pages: [],
    sourceBytes: file.size,
    warnings,
  };
}
