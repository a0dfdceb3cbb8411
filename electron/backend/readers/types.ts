export type DocumentFormat = 'text' | 'markdown' | 'pdf' | 'epub' | 'docx' | 'html' | 'code';

/** A labelled span of ReadResult.text, for citations. */
export interface Section {
  /** "Chapter 12: The Storm", "src/foo.ts", ... */
  label: string;
  kind: 'chapter' | 'heading' | 'file' | 'part';
  /** 1 = top. */
  level: number;
  /** Offsets into ReadResult.text in UTF-16 code units (JS string indices), [charStart, charEnd). */
  charStart: number;
  charEnd: number;
  /** Code: the file's path relative to the folder root, with forward slashes. */
  path?: string;
}

/** Where 1-based page `page` starts in ReadResult.text. */
export interface PageBreak {
  page: number;
  charStart: number;
}

export interface ReadResult {
  title: string;
  format: DocumentFormat;
  text: string;
  /** Ordered by charStart; sections of the same level do not overlap. */
  sections: Section[];
  /** Empty unless the format has pages. */
  pages: PageBreak[];
  sourceBytes: number;
  /** Things the user may want to know, e.g. "skipped 12 binary files". */
  warnings: string[];
}

export interface ReadOptions {
  signal?: AbortSignal;
  /** Largest document (or folder total) accepted, in bytes; default 512 MiB. */
  maxBytes?: number;
}

export const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;
