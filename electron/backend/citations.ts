// Human-readable locations of passages: "Chapter 12, p. 231" for books, "src/foo.ts:120" for code.

export interface LocatableSection {
  idx: number;
  label: string;
  kind: string;
  charStart: number;
  path: string | null;
}

export interface Page {
  page: number;
  charStart: number;
}

/** The last page starting at or before `offset` (pages sorted by charStart). */
export function pageAt(pages: readonly Page[], offset: number): number | null {
  let lo = 0;
  let hi = pages.length - 1;
  let found: number | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (pages[mid].charStart <= offset) {
      found = pages[mid].page;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

function newlines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Location of the passage [charStart, charEnd) in `section`: its pages, or its first line in a file.
 * Code sections start with one header line ("=== path ===") before the file's first line.
 * `text` gives the document's text, read only when a line number is needed.
 */
export function locationOf(section: LocatableSection | null, pages: readonly Page[], charStart: number,
                           text: (() => string) | null, charEnd = charStart + 1): string {
  if (section && section.kind === 'file' && section.path) {
    if (!text) return section.path;
    const lineInFile = newlines(text().slice(section.charStart, charStart));   // header line = line 0
    return `${section.path}:${Math.max(1, lineInFile)}`;
  }
  const parts: string[] = [];
  if (section) parts.push(section.label);
  const first = pageAt(pages, charStart);
  const last = pageAt(pages, Math.max(charStart, charEnd - 1));
  if (first !== null) parts.push(last !== null && last !== first ? `pp. ${first}\u2013${last}` : `p. ${first}`);
  // Neither chapters nor pages (a log, a plain text): the line it starts on.
  if (!parts.length && text) parts.push(`line ${newlines(text().slice(0, charStart)) + 1}`);
  return parts.join(', ') || 'start of the document';
}
