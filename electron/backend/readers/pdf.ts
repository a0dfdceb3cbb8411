import { dirname, join } from 'node:path';
import { ReaderError, throwIfAborted } from './errors';
import { offsetAtPosition, pageText, type LinePosition, type PositionedText } from './pdf-page-text';
import { cleanLabel, sectionsFromHeadings, type Heading } from './sections';
import { readBytes, titleFromName, type SourceFile } from './source';
import type { PageBreak, ReadOptions, ReadResult, Section } from './types';

type Pdfjs = typeof import('pdfjs-dist/legacy/build/pdf.mjs');
type PdfDocument = Awaited<ReturnType<Pdfjs['getDocument']>['promise']>;

let pdfjs: Promise<Pdfjs> | null = null;

function loadPdfjs(): Promise<Pdfjs> {
  pdfjs ??= import('pdfjs-dist/legacy/build/pdf.mjs');
  return pdfjs;
}

/** Folders of pdf.js's font, CMap and decoder data; pdf.js in Node reads them as file paths. */
function pdfjsAssets(): { standardFontDataUrl: string; cMapUrl: string; wasmUrl: string } {
  const root = dirname(require.resolve('pdfjs-dist/package.json'));
  return {
    standardFontDataUrl: join(root, 'standard_fonts') + '/',
    cMapUrl: join(root, 'cmaps') + '/',
    wasmUrl: join(root, 'wasm') + '/',
  };
}

const PAGE_SEPARATOR = '\n\n';
const MAX_OUTLINE_ENTRIES = 10_000;
const MAX_OUTLINE_DEPTH = 12;
const PAGES_LISTED_IN_WARNING = 20;

interface OutlineTarget {
  label: string;
  level: number;
  /** 0-based. */
  pageIndex: number;
  left: number | null;
  top: number | null;
}

type OutlineNode = Awaited<ReturnType<PdfDocument['getOutline']>>[number];

function finiteOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Outline entries with the page (and position on it) each one points to; entries that point nowhere are dropped. */
async function outlineTargets(doc: PdfDocument): Promise<OutlineTarget[]> {
  const outline = await doc.getOutline().catch(() => null);
  if (!outline) return [];
  const targets: OutlineTarget[] = [];
  const visit = async (nodes: OutlineNode[], level: number): Promise<void> => {
    for (const node of nodes) {
      if (targets.length >= MAX_OUTLINE_ENTRIES) return;
      const target = await resolveDestination(doc, node.dest);
      const label = cleanLabel(node.title ?? '');
      if (target && label) targets.push({ label, level, ...target });
      if (Array.isArray(node.items) && node.items.length > 0 && level < MAX_OUTLINE_DEPTH) {
        await visit(node.items as OutlineNode[], level + 1);
      }
    }
  };
  await visit(outline, 1);
  return targets;
}

async function resolveDestination(
  doc: PdfDocument,
  dest: string | unknown[] | null,
): Promise<Omit<OutlineTarget, 'label' | 'level'> | null> {
  try {
    const explicit = typeof dest === 'string' ? await doc.getDestination(dest) : dest;
    if (!Array.isArray(explicit) || explicit.length === 0) return null;
    const ref = explicit[0];
    const pageIndex = typeof ref === 'number' ? ref : await doc.getPageIndex(ref);
    if (!Number.isInteger(pageIndex) || pageIndex < 0 || pageIndex >= doc.numPages) return null;
    const mode = (explicit[1] as { name?: string } | undefined)?.name;
    let left: number | null = null;
    let top: number | null = null;
    if (mode === 'XYZ') {
      left = finiteOrNull(explicit[2]);
      top = finiteOrNull(explicit[3]);
    } else if (mode === 'FitH' || mode === 'FitBH') {
      top = finiteOrNull(explicit[2]);
    } else if (mode === 'FitR') {
      left = finiteOrNull(explicit[2]);
      top = finiteOrNull(explicit[5]);
    }
    return { pageIndex, left, top };
  } catch {
    return null;
  }
}

function sectionKind(heading: Heading): Section['kind'] {
  if (/^(?:part|book|volume)\b/i.test(heading.label)) return 'part';
  return heading.level === 1 ? 'chapter' : 'heading';
}

function describePages(pages: number[]): string {
  const listed = pages.slice(0, PAGES_LISTED_IN_WARNING).join(', ');
  const more = pages.length > PAGES_LISTED_IN_WARNING ? ` and ${pages.length - PAGES_LISTED_IN_WARNING} more` : '';
  return pages.length === 1 ? `page ${listed}` : `pages ${listed}${more}`;
}

function documentTitle(info: unknown, name: string): string {
  const raw = (info as { Title?: unknown } | null)?.Title;
  if (typeof raw === 'string') {
    const title = cleanLabel(raw.replace(/^Microsoft (?:Word|PowerPoint) - /, ''));
    if (title && !/^untitled$/i.test(title)) return title;
  }
  return titleFromName(name);
}

function openError(error: unknown, name: string): ReaderError {
  const kind = (error as Error | undefined)?.name;
  if (kind === 'PasswordException') {
    return new ReaderError('ENCRYPTED', `${name} is password-protected; Folio can't open encrypted PDFs`);
  }
  return new ReaderError('CORRUPT', `${name} is damaged or is not a PDF file`);
}

export async function readPdf(file: SourceFile, options: ReadOptions): Promise<ReadResult> {
  const bytes = await readBytes(file, options);
  const lib = await loadPdfjs();
  throwIfAborted(options.signal, file.name);
  const task = lib.getDocument({
    data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    ...pdfjsAssets(),
    cMapPacked: true,
    isEvalSupported: false,
    useSystemFonts: false,
    disableFontFace: true,
    stopAtErrors: false,
    verbosity: lib.VerbosityLevel.ERRORS,
  });
  try {
    let doc: PdfDocument;
    try {
      doc = await task.promise;
    } catch (error) {
      throw openError(error, file.name);
    }
    const targets = await outlineTargets(doc);
    const targetPages = new Set(targets.map((t) => t.pageIndex));
    const linesOfPage = new Map<number, LinePosition[]>();

    const parts: string[] = [];
    const pages: PageBreak[] = [];
    const blankPages: number[] = [];
    const unreadablePages: number[] = [];
    let offset = 0;
    for (let index = 0; index < doc.numPages; index++) {
      throwIfAborted(options.signal, file.name);
      if (index > 0) {
        parts.push(PAGE_SEPARATOR);
        offset += PAGE_SEPARATOR.length;
      }
      pages.push({ page: index + 1, charStart: offset });
      let text = '';
      let readable = true;
      try {
        const page = await doc.getPage(index + 1);
        const content = await page.getTextContent();
        const items: PositionedText[] = [];
        for (const item of content.items) if ('str' in item) items.push(item);
        const rebuilt = pageText(items);
        text = rebuilt.text;
        if (targetPages.has(index)) linesOfPage.set(index, rebuilt.lines);
        page.cleanup();
      } catch (error) {
        if ((error as Error | undefined)?.name === 'AbortError') throw error;
        unreadablePages.push(index + 1);
        readable = false;
      }
      if (readable && text.length === 0) blankPages.push(index + 1);
      parts.push(text);
      offset += text.length;
    }
    const text = parts.join('');
    if (!/\S/.test(text)) {
      throw new ReaderError('NO_TEXT', `${file.name} has no text layer (an image-only PDF?); Folio needs text to read`);
    }

    const headings: Heading[] = targets
      .map((t) => ({
        label: t.label,
        level: t.level,
        charStart:
          pages[t.pageIndex].charStart + offsetAtPosition(linesOfPage.get(t.pageIndex) ?? [], t.left, t.top),
      }))
      .sort((a, b) => a.charStart - b.charStart);

    const warnings: string[] = [];
    if (blankPages.length > 0) {
      warnings.push(`${describePages(blankPages)} ${blankPages.length === 1 ? 'has' : 'have'} no text (scanned images?)`);
    }
    if (unreadablePages.length > 0) {
      warnings.push(`${describePages(unreadablePages)} could not be read`);
    }
    const metadata = await doc.getMetadata().catch(() => null);
    return {
      title: documentTitle(metadata?.info, file.name),
      format: 'pdf',
      text,
      sections: sectionsFromHeadings(headings, text.length, sectionKind),
      pages,
      sourceBytes: file.size,
      warnings,
    };
  } finally {
    await task.destroy();
  }
}
