// Conversions from snake_case SQLite rows to the camelCase row types.

import type { SqlRow, SqlValue } from './database';
import type {
  Citation, CollectionRow, ConversationRow, DocumentFormat, DocumentRow, DocumentStatus, KeyPassage, MessageRole,
  MessageRow, PassageRow, SearchHit, SectionRow, SnapshotKind, SnapshotRow, SummaryRow, SummaryScope, PageRow,
} from './types';

function text(value: SqlValue | undefined): string {
  return value === null || value === undefined ? '' : String(value);
}

function optionalText(value: SqlValue | undefined): string | null {
  return value === null || value === undefined ? null : String(value);
}

function int(value: SqlValue | undefined): number {
  return value === null || value === undefined ? 0 : Number(value);
}

function optionalInt(value: SqlValue | undefined): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/** JSON columns written by this module; a damaged value reads as empty rather than failing a whole list. */
function jsonArray<T>(value: SqlValue | undefined): T[] {
  try {
    const parsed: unknown = JSON.parse(text(value) || '[]');
    return Array.isArray(parsed) ? (parsed as T[]) : [];
  } catch {
    return [];
  }
}

export function toDocument(row: SqlRow): DocumentRow {
  return {
    id: text(row.id),
    title: text(row.title),
    sourcePath: text(row.source_path),
    format: text(row.format) as DocumentFormat,
    sourceBytes: int(row.source_bytes),
    charCount: int(row.char_count),
    tokenCount: int(row.token_count),
    status: text(row.status) as DocumentStatus,
    error: optionalText(row.error),
    modelFingerprint: optionalText(row.model_fingerprint),
    modelPath: optionalText(row.model_path),
    tokensIngested: int(row.tokens_ingested),
    createdAt: text(row.created_at),
    updatedAt: text(row.updated_at),
    collectionId: optionalText(row.collection_id),
  };
}

export function toCollection(row: SqlRow): CollectionRow {
  return { id: text(row.id), name: text(row.name), createdAt: text(row.created_at) };
}

export function toSection(row: SqlRow): SectionRow {
  return {
    docId: text(row.doc_id),
    idx: int(row.idx),
    label: text(row.label),
    kind: text(row.kind),
    level: int(row.level),
    charStart: int(row.char_start),
    charEnd: int(row.char_end),
    tokenStart: optionalInt(row.token_start),
    tokenEnd: optionalInt(row.token_end),
    path: optionalText(row.path),
    page: optionalInt(row.page),
  };
}

export function toPage(row: SqlRow): PageRow {
  return { page: int(row.page), charStart: int(row.char_start) };
}

export function toPassage(row: SqlRow): PassageRow {
  return {
    id: int(row.id),
    docId: text(row.doc_id),
    idx: int(row.idx),
    sectionIdx: optionalInt(row.section_idx),
    charStart: int(row.char_start),
    charEnd: int(row.char_end),
    tokenStart: optionalInt(row.token_start),
    tokenEnd: optionalInt(row.token_end),
    text: text(row.text),
  };
}

export function toSearchHit(row: SqlRow): SearchHit {
  return {
    passageId: int(row.id),
    docId: text(row.doc_id),
    docTitle: text(row.doc_title),
    passageIdx: int(row.idx),
    sectionIdx: optionalInt(row.section_idx),
    sectionLabel: optionalText(row.section_label),
    charStart: int(row.char_start),
    charEnd: int(row.char_end),
    tokenStart: optionalInt(row.token_start),
    tokenEnd: optionalInt(row.token_end),
    text: text(row.text),
    score: Number(row.score),
    snippet: text(row.snippet),
  };
}

export function toSnapshot(row: SqlRow): SnapshotRow {
  return {
    docId: text(row.doc_id),
    modelFingerprint: text(row.model_fingerprint),
    tokenPos: int(row.token_pos),
    kind: text(row.kind) as SnapshotKind,
    sectionIdx: optionalInt(row.section_idx),
    path: text(row.path),
    bytes: int(row.bytes),
    createdAt: text(row.created_at),
  };
}

export function toConversation(row: SqlRow): ConversationRow {
  return {
    id: text(row.id),
    docId: optionalText(row.doc_id),
    collectionId: optionalText(row.collection_id),
    title: text(row.title),
    modelFingerprint: optionalText(row.model_fingerprint),
    statePath: optionalText(row.state_path),
    createdAt: text(row.created_at),
    updatedAt: text(row.updated_at),
  };
}

export function toMessage(row: SqlRow): MessageRow {
  return {
    id: int(row.id),
    conversationId: text(row.conversation_id),
    role: text(row.role) as MessageRole,
    text: text(row.text),
    citations: jsonArray<Citation>(row.citations_json),
    createdAt: text(row.created_at),
  };
}

export function toSummary(row: SqlRow): SummaryRow {
  return {
    docId: text(row.doc_id),
    modelFingerprint: text(row.model_fingerprint),
    scope: text(row.scope) as SummaryScope,
    sectionIdx: int(row.section_idx),
    text: text(row.text),
    keyPassages: jsonArray<KeyPassage>(row.key_passages_json),
    createdAt: text(row.created_at),
  };
}
