// Rows of the library database as the rest of the backend sees them (camelCase).
// Timestamps are ISO-8601 strings in UTC, which also sort chronologically as text.

import type { Citation, CollectionInfo, DocumentFormat, DocumentInfo, DocumentStatus, KeyPassage } from '../../api/types';

export type { Citation, DocumentFormat, DocumentStatus, KeyPassage };

export const DOCUMENT_STATUSES = [
  'queued', 'reading', 'indexing', 'ingesting', 'ready', 'error', 'interrupted', 'cancelled',
] as const satisfies readonly DocumentStatus[];

/** Statuses of a document some job is working on; a restart finds them stale. */
export const ACTIVE_STATUSES: readonly DocumentStatus[] = ['reading', 'indexing', 'ingesting'];

export const SNAPSHOT_KINDS = ['periodic', 'section', 'final'] as const;
export type SnapshotKind = (typeof SNAPSHOT_KINDS)[number];

export const MESSAGE_ROLES = ['user', 'assistant'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

export const SUMMARY_SCOPES = ['section', 'document'] as const;
export type SummaryScope = (typeof SUMMARY_SCOPES)[number];

/** section_idx used for a whole-document summary. */
export const DOCUMENT_SCOPE_SECTION_IDX = -1;

/** A document as the API describes it, plus the model file that read it. */
export interface DocumentRow extends DocumentInfo {
  modelPath: string | null;
}

export interface NewDocument {
  title: string;
  sourcePath: string;
  format: DocumentFormat;
  sourceBytes: number;
  collectionId?: string | null;
}

export type DocumentPatch = Partial<Pick<DocumentRow,
  | 'title' | 'sourcePath' | 'format' | 'sourceBytes' | 'charCount' | 'tokenCount' | 'status'
  | 'error' | 'modelFingerprint' | 'modelPath' | 'tokensIngested' | 'collectionId'>>;

export type CollectionRow = CollectionInfo;

export interface SectionRow {
  docId: string;
  idx: number;
  label: string;
  kind: string;
  level: number;
  charStart: number;
  charEnd: number;
  tokenStart: number | null;
  tokenEnd: number | null;
  /** Labels of the enclosing sections, joined by the reader (e.g. "Part I › Chapter 2"). */
  path: string | null;
  page: number | null;
}

/** A section as a reader finds it: token offsets come later, from the tokenizer. */
export interface SectionInput {
  /** Defaults to the position in the list. */
  idx?: number;
  label: string;
  kind: string;
  level: number;
  charStart: number;
  charEnd: number;
  path?: string | null;
  page?: number | null;
}

export interface PageRow {
  page: number;
  charStart: number;
}

export interface StructureInput {
  charCount: number;
  sections: SectionInput[];
  pages: PageRow[];
}

export interface SectionTokenRange {
  idx: number;
  tokenStart: number;
  tokenEnd: number;
}

export interface PassageRow {
  id: number;
  docId: string;
  idx: number;
  sectionIdx: number | null;
  charStart: number;
  charEnd: number;
  tokenStart: number | null;
  tokenEnd: number | null;
  text: string;
}

export type PassageInput = Omit<PassageRow, 'id' | 'docId' | 'sectionIdx' | 'tokenStart' | 'tokenEnd'> & {
  sectionIdx?: number | null;
  tokenStart?: number | null;
  tokenEnd?: number | null;
};

export interface SearchHit {
  /** passages.id, the full-text index rowid. */
  passageId: number;
  docId: string;
  docTitle: string;
  passageIdx: number;
  sectionIdx: number | null;
  sectionLabel: string | null;
  charStart: number;
  charEnd: number;
  tokenStart: number | null;
  tokenEnd: number | null;
  text: string;
  /** -bm25: higher is better; comparable only within one query. */
  score: number;
  /** An excerpt with matched terms between SNIPPET_OPEN and SNIPPET_CLOSE (or the markers asked for). */
  snippet: string;
}

export interface SearchOptions {
  /** Only these documents; an empty list matches nothing. */
  docIds?: string[];
  limit?: number;
  /** Markers put around matched terms in the snippet. */
  highlight?: { open: string; close: string };
  /** Approximate length of the snippet in tokens (1..64). */
  snippetTokens?: number;
}

export interface SnapshotRow {
  docId: string;
  modelFingerprint: string;
  tokenPos: number;
  kind: SnapshotKind;
  sectionIdx: number | null;
  path: string;
  bytes: number;
  createdAt: string;
}

export type NewSnapshot = Omit<SnapshotRow, 'createdAt' | 'sectionIdx'> & { sectionIdx?: number | null };

export interface ConversationRow {
  id: string;
  docId: string | null;
  collectionId: string | null;
  title: string;
  modelFingerprint: string | null;
  statePath: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface ConversationWithMessages extends ConversationRow {
  messages: MessageRow[];
}

export interface ConversationFilter {
  docId?: string;
  collectionId?: string;
}

export interface NewConversation {
  docId?: string | null;
  collectionId?: string | null;
  title: string;
  modelFingerprint?: string | null;
}

export interface MessageRow {
  id: number;
  conversationId: string;
  role: MessageRole;
  text: string;
  /** Stored as JSON. */
  citations: Citation[];
  createdAt: string;
}

export interface NewMessage {
  role: MessageRole;
  text: string;
  citations?: Citation[];
}

export interface SummaryKey {
  docId: string;
  modelFingerprint: string;
  scope: SummaryScope;
  /** DOCUMENT_SCOPE_SECTION_IDX (-1) for the document scope. */
  sectionIdx: number;
}

export interface SummaryRow extends SummaryKey {
  text: string;
  /** Stored as JSON. */
  keyPassages: KeyPassage[];
  createdAt: string;
}

export type NewSummary = Omit<SummaryRow, 'createdAt'>;
