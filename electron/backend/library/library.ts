// The document library: documents, their structure and passages, the full-text index,
// model state snapshots, conversations, summaries, collections and settings, in one
// SQLite database per data directory.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Database, type SqlValue } from './database';
import { AmbiguousDocumentError, NotFoundError } from './errors';
import { toFtsQuery } from './ftsQuery';
import { newId } from './ids';
import { dataPaths, isInside, type DataPaths } from './paths';
import {
  toCollection, toConversation, toDocument, toMessage, toPage, toPassage, toSearchHit, toSection,
  toSnapshot, toSummary,
} from './rows';
import {
  ACTIVE_STATUSES, DOCUMENT_SCOPE_SECTION_IDX, DOCUMENT_STATUSES, MESSAGE_ROLES, SNAPSHOT_KINDS, SUMMARY_SCOPES,
  type CollectionRow, type ConversationRow, type DocumentPatch, type DocumentRow, type MessageRow,
  type ConversationFilter, type ConversationWithMessages, type NewConversation, type NewDocument, type NewMessage, type NewSnapshot, type NewSummary, type PageRow,
  type PassageInput, type PassageRow, type SearchHit, type SearchOptions, type SectionRow,
  type SectionTokenRange, type SnapshotRow, type StructureInput, type SummaryRow, type SummaryScope,
} from './types';

/** Default snippet markers: control characters that never occur in extracted text, so a UI can split on them. */
export const SNIPPET_OPEN = '\u0002';
export const SNIPPET_CLOSE = '\u0003';
const SNIPPET_ELLIPSIS = '…';

const DEFAULT_SEARCH_LIMIT = 20;
const MAX_SEARCH_LIMIT = 1000;
const DEFAULT_SNIPPET_TOKENS = 24;

const DOCUMENT_PATCH_COLUMNS: { [K in keyof Required<DocumentPatch>]: string } = {
  title: 'title',
  sourcePath: 'source_path',
  format: 'format',
  sourceBytes: 'source_bytes',
  charCount: 'char_count',
  tokenCount: 'token_count',
  status: 'status',
  error: 'error',
  modelFingerprint: 'model_fingerprint',
  modelPath: 'model_path',
  tokensIngested: 'tokens_ingested',
  collectionId: 'collection_id',
};

const PASSAGE_COLUMNS = 'p.id, p.doc_id, p.idx, p.section_idx, p.char_start, p.char_end, p.token_start, p.token_end, p.text';

function now(): string {
  return new Date().toISOString();
}

function nonEmpty(value: string, what: string): string {
  const trimmed = value.trim();
  if (!trimmed) throw new Error(`${what} must not be empty`);
  return trimmed;
}

function oneOf<T extends string>(value: T, allowed: readonly T[], what: string): T {
  if (!allowed.includes(value)) throw new Error(`${what} must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
  return value;
}

/** The summaries primary key; the document scope always uses section_idx -1. */
function summaryKey(docId: string, modelFingerprint: string, scope: SummaryScope, sectionIdx: number):
    [string, string, SummaryScope, number] {
  oneOf(scope, SUMMARY_SCOPES, 'summary scope');
  return [docId, modelFingerprint, scope, scope === 'document' ? DOCUMENT_SCOPE_SECTION_IDX : sectionIdx];
}

/** The page whose start is the last at or before `charStart` (pages sorted by charStart). */
function pageAt(pages: PageRow[], charStart: number): number | null {
  let lo = 0;
  let hi = pages.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pages[mid]!.charStart <= charStart) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? pages[lo - 1]!.page : null;
}

export class Library {
  readonly paths: DataPaths;
  private readonly db: Database;

  private constructor(paths: DataPaths, db: Database) {
    this.paths = paths;
    this.db = db;
  }

  /** Opens (creating if needed) the library in `dataDir` and brings its schema up to date. */
  static open(dataDir: string): Library {
    const paths = dataPaths(dataDir);
    fs.mkdirSync(paths.documentsDir(), { recursive: true });
    fs.mkdirSync(paths.conversationsDir(), { recursive: true });
    return new Library(paths, new Database(paths.databasePath()));
  }

  /** The data directory, resolved to an absolute path. */
  get dataDir(): string {
    return this.paths.root;
  }

  get schemaVersion(): number {
    return this.db.schemaVersion;
  }

  close(): void {
    this.db.close();
  }

  // ---- documents ----

  createDocument(input: NewDocument): DocumentRow {
    const title = nonEmpty(input.title, 'document title');
    if (input.collectionId && !this.getCollection(input.collectionId)) throw new NotFoundError('collection', input.collectionId);
    const timestamp = now();
    let id = newId();
    while (this.getDocument(id)) id = newId();
    this.db.run(
      `INSERT INTO documents (id, title, source_path, format, source_bytes, status, created_at, updated_at, collection_id)
       VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)`,
      id, title, input.sourcePath, input.format, input.sourceBytes, timestamp, timestamp, input.collectionId ?? null,
    );
    return this.requireDocument(id);
  }

  getDocument(id: string): DocumentRow | null {
    const row = this.db.get('SELECT * FROM documents WHERE id = ?', id);
    return row ? toDocument(row) : null;
  }

  /** Oldest first, which is the order documents were added in. */
  listDocuments(): DocumentRow[] {
    return this.db.all('SELECT * FROM documents ORDER BY created_at, rowid').map(toDocument);
  }

  /**
   * A document named by its id, or by (the start of) its title, file name or source path,
   * ignoring case. An exact name beats a prefix; several matches at the same level throw
   * AmbiguousDocumentError listing them; no match throws NotFoundError.
   */
  findDocument(query: string): DocumentRow {
    const wanted = query.trim();
    if (!wanted) throw new NotFoundError('document', wanted, 'no document named: the name is empty');
    const byId = this.getDocument(wanted);
    if (byId) return byId;

    const lower = wanted.toLowerCase();
    const names = (doc: DocumentRow) => [doc.title, doc.sourcePath, path.basename(doc.sourcePath)].map((n) => n.toLowerCase());
    const documents = this.listDocuments();
    const exact = documents.filter((doc) => names(doc).includes(lower));
    const matches = exact.length > 0
      ? exact
      : documents.filter((doc) => doc.id.startsWith(lower) || names(doc).some((name) => name.startsWith(lower)));
    if (matches.length > 1) throw new AmbiguousDocumentError(wanted, matches);
    if (matches.length === 0) {
      throw new NotFoundError('document', wanted, `no document matches ${JSON.stringify(wanted)}`);
    }
    return matches[0]!;
  }

  updateDocument(id: string, patch: DocumentPatch): DocumentRow {
    if (patch.status !== undefined) oneOf(patch.status, DOCUMENT_STATUSES, 'document status');
    if (patch.title !== undefined) patch = { ...patch, title: nonEmpty(patch.title, 'document title') };
    const assignments: string[] = [];
    const values: SqlValue[] = [];
    for (const [key, column] of Object.entries(DOCUMENT_PATCH_COLUMNS) as [keyof DocumentPatch, string][]) {
      const value = patch[key];
      if (value === undefined) continue;
      assignments.push(`${column} = ?`);
      values.push(value);
    }
    assignments.push('updated_at = ?');
    values.push(now());
    const { changes } = this.db.run(`UPDATE documents SET ${assignments.join(', ')} WHERE id = ?`, ...values, id);
    if (changes === 0) throw new NotFoundError('document', id);
    return this.requireDocument(id);
  }

  /**
   * Deletes the document with everything that refers to it: structure, passages and their
   * index entries, snapshots, summaries, its conversations, and its documents/<id>/ folder.
   * Files go only after the rows are committed, so a failed delete leaves a usable document.
   */
  removeDocument(id: string): boolean {
    const files: string[] = [];
    const removed = this.db.transaction(() => {
      if (!this.getDocument(id)) return false;
      for (const row of this.db.all('SELECT state_path FROM conversations WHERE doc_id = ? AND state_path IS NOT NULL', id)) {
        files.push(String(row.state_path));
      }
      for (const row of this.db.all('SELECT path FROM snapshots WHERE doc_id = ?', id)) files.push(String(row.path));
      this.db.run('DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE doc_id = ?)', id);
      this.db.run('DELETE FROM conversations WHERE doc_id = ?', id);
      this.db.run('DELETE FROM summaries WHERE doc_id = ?', id);
      this.db.run('DELETE FROM snapshots WHERE doc_id = ?', id);
      this.db.run('DELETE FROM passages WHERE doc_id = ?', id);
      this.db.run('DELETE FROM sections WHERE doc_id = ?', id);
      this.db.run('DELETE FROM pages WHERE doc_id = ?', id);
      this.db.run('DELETE FROM documents WHERE id = ?', id);
      return true;
    });
    if (removed) {
      this.removeFiles(files);
      fs.rmSync(this.paths.documentDir(id), { recursive: true, force: true });
    }
    return removed;
  }

  /** Forgets how far `modelFingerprint` has read the document: its snapshots (rows and files) go. */
  resetIngestion(id: string, modelFingerprint: string): void {
    const files = this.db.transaction(() => {
      this.requireDocument(id);
      const paths = this.db.all('SELECT path FROM snapshots WHERE doc_id = ? AND model_fingerprint = ?', id, modelFingerprint)
        .map((row) => String(row.path));
      this.db.run('DELETE FROM snapshots WHERE doc_id = ? AND model_fingerprint = ?', id, modelFingerprint);
      this.db.run('UPDATE documents SET tokens_ingested = 0, updated_at = ? WHERE id = ?', now(), id);
      return paths;
    });
    this.removeFiles(files);
    try {
      fs.rmSync(this.paths.statesDir(id, modelFingerprint), { recursive: true, force: true });
    } catch {
      // A fingerprint that is not a safe file name never had a states folder.
    }
  }

  /** Marks documents left mid-job (by a crash or a quit) as interrupted; returns their ids. */
  interruptActiveDocuments(): string[] {
    return this.db.transaction(() => {
      const placeholders = ACTIVE_STATUSES.map(() => '?').join(', ');
      const ids = this.db.all(`SELECT id FROM documents WHERE status IN (${placeholders})`, ...ACTIVE_STATUSES)
        .map((row) => String(row.id));
      this.db.run(`UPDATE documents SET status = 'interrupted', updated_at = ? WHERE status IN (${placeholders})`,
        now(), ...ACTIVE_STATUSES);
      return ids;
    });
  }

  // ---- structure ----

  /**
   * Replaces the sections and pages of a document (a re-read), and records its length.
   * A section without a page gets the page its start falls on, when the document has pages.
   */
  replaceStructure(docId: string, structure: StructureInput): void {
    const pages = [...structure.pages].sort((a, b) => a.charStart - b.charStart);
    this.db.transaction(() => {
      this.requireDocument(docId);
      this.db.run('DELETE FROM sections WHERE doc_id = ?', docId);
      this.db.run('DELETE FROM pages WHERE doc_id = ?', docId);
      structure.sections.forEach((section, position) => {
        this.db.run(
          `INSERT INTO sections (doc_id, idx, label, kind, level, char_start, char_end, path, page)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          docId, section.idx ?? position, section.label, section.kind, section.level,
          section.charStart, section.charEnd, section.path ?? null, section.page ?? pageAt(pages, section.charStart),
        );
      });
      for (const page of structure.pages) {
        this.db.run('INSERT INTO pages (doc_id, page, char_start) VALUES (?, ?, ?)', docId, page.page, page.charStart);
      }
      this.db.run('UPDATE documents SET char_count = ?, updated_at = ? WHERE id = ?', structure.charCount, now(), docId);
    });
  }

  setSectionTokenRanges(docId: string, ranges: SectionTokenRange[]): void {
    this.db.transaction(() => {
      for (const range of ranges) {
        const { changes } = this.db.run(
          'UPDATE sections SET token_start = ?, token_end = ? WHERE doc_id = ? AND idx = ?',
          range.tokenStart, range.tokenEnd, docId, range.idx,
        );
        if (changes === 0) throw new NotFoundError('section', `${docId}#${range.idx}`);
      }
    });
  }

  getSections(docId: string): SectionRow[] {
    return this.db.all('SELECT * FROM sections WHERE doc_id = ? ORDER BY idx', docId).map(toSection);
  }

  getSection(docId: string, idx: number): SectionRow | null {
    const row = this.db.get('SELECT * FROM sections WHERE doc_id = ? AND idx = ?', docId, idx);
    return row ? toSection(row) : null;
  }

  getPages(docId: string): PageRow[] {
    return this.db.all('SELECT page, char_start FROM pages WHERE doc_id = ? ORDER BY page', docId).map(toPage);
  }

  // ---- passages ----

  /**
   * Stores passages in one transaction. A passage whose (document, idx) already exists is
   * replaced in place, and its index entry with it, so re-adding after a crash never duplicates.
   */
  addPassages(docId: string, passages: PassageInput[]): number {
    return this.db.transaction(() => {
      for (const passage of passages) {
        this.db.run(
          `INSERT INTO passages (doc_id, idx, section_idx, char_start, char_end, token_start, token_end, text)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (doc_id, idx) DO UPDATE SET
             section_idx = excluded.section_idx, char_start = excluded.char_start, char_end = excluded.char_end,
             token_start = excluded.token_start, token_end = excluded.token_end, text = excluded.text`,
          docId, passage.idx, passage.sectionIdx ?? null, passage.charStart, passage.charEnd,
          passage.tokenStart ?? null, passage.tokenEnd ?? null, passage.text,
        );
      }
      return passages.length;
    });
  }

  passageCount(docId: string): number {
    return Number(this.db.get('SELECT count(*) AS n FROM passages WHERE doc_id = ?', docId)?.n ?? 0);
  }

  /** Passages in order from `fromIdx` (default 0); all of them unless `limit` is given. */
  getPassages(docId: string, options: { fromIdx?: number; limit?: number } = {}): PassageRow[] {
    return this.db.all(
      `SELECT ${PASSAGE_COLUMNS} FROM passages p WHERE p.doc_id = ? AND p.idx >= ? ORDER BY p.idx LIMIT ?`,
      docId, options.fromIdx ?? 0, options.limit ?? -1,
    ).map(toPassage);
  }

  getPassage(docId: string, idx: number): PassageRow | null {
    const row = this.db.get(`SELECT ${PASSAGE_COLUMNS} FROM passages p WHERE p.doc_id = ? AND p.idx = ?`, docId, idx);
    return row ? toPassage(row) : null;
  }

  /** The passage holding token `tokenPos`: the last one starting at or before it. */
  passageAtToken(docId: string, tokenPos: number): PassageRow | null {
    const row = this.db.get(
      `SELECT ${PASSAGE_COLUMNS} FROM passages p
       WHERE p.doc_id = ? AND p.token_start IS NOT NULL AND p.token_start <= ?
       ORDER BY p.token_start DESC, p.idx DESC LIMIT 1`,
      docId, tokenPos,
    );
    return row ? toPassage(row) : null;
  }

  passagesInSection(docId: string, sectionIdx: number): PassageRow[] {
    return this.db.all(
      `SELECT ${PASSAGE_COLUMNS} FROM passages p WHERE p.doc_id = ? AND p.section_idx = ? ORDER BY p.idx`,
      docId, sectionIdx,
    ).map(toPassage);
  }

  /** Passages lying inside the character range [charStart, charEnd), in order. */
  passagesInRange(docId: string, charStart: number, charEnd: number): PassageRow[] {
    return this.db.all(
      `SELECT ${PASSAGE_COLUMNS} FROM passages p WHERE p.doc_id = ? AND p.char_start >= ? AND p.char_end <= ? ORDER BY p.idx`,
      docId, charStart, charEnd,
    ).map(toPassage);
  }

  /** Deletes passages with idx >= `fromIdx` (to redo them on resume); returns how many went. */
  deletePassagesFrom(docId: string, fromIdx: number): number {
    return this.db.transaction(() => this.db.run('DELETE FROM passages WHERE doc_id = ? AND idx >= ?', docId, fromIdx).changes);
  }

  // ---- search ----

  /**
   * BM25 search over passages for free user text (never an FTS5 syntax error). Best first;
   * `score` is -bm25, so higher is better. No searchable words, or an empty docIds list, gives [].
   */
  search(query: string, options: SearchOptions = {}): SearchHit[] {
    const match = toFtsQuery(query);
    if (match === null || (options.docIds !== undefined && options.docIds.length === 0)) return [];
    const limit = Math.min(Math.max(Math.trunc(options.limit ?? DEFAULT_SEARCH_LIMIT), 1), MAX_SEARCH_LIMIT);
    const snippetTokens = Math.min(Math.max(Math.trunc(options.snippetTokens ?? DEFAULT_SNIPPET_TOKENS), 1), 64);
    const open = options.highlight?.open ?? SNIPPET_OPEN;
    const close = options.highlight?.close ?? SNIPPET_CLOSE;
    const docFilter = options.docIds ? 'AND p.doc_id IN (SELECT value FROM json_each(?))' : '';
    const params: SqlValue[] = [open, close, SNIPPET_ELLIPSIS, snippetTokens, match];
    if (options.docIds) params.push(JSON.stringify(options.docIds));
    params.push(limit);
    return this.db.all(
      `SELECT ${PASSAGE_COLUMNS}, d.title AS doc_title, s.label AS section_label,
              -bm25(passages_fts) AS score,
              snippet(passages_fts, 0, ?, ?, ?, ?) AS snippet
       FROM passages_fts
       JOIN passages p ON p.id = passages_fts.rowid
       JOIN documents d ON d.id = p.doc_id
       LEFT JOIN sections s ON s.doc_id = p.doc_id AND s.idx = p.section_idx
       WHERE passages_fts MATCH ? ${docFilter}
       ORDER BY bm25(passages_fts), p.id
       LIMIT ?`,
      ...params,
    ).map(toSearchHit);
  }

  // ---- snapshots ----

  /** Records a state snapshot; one at the same position replaces it (a rewrite after a crash). */
  addSnapshot(snapshot: NewSnapshot): SnapshotRow {
    oneOf(snapshot.kind, SNAPSHOT_KINDS, 'snapshot kind');
    this.db.run(
      `INSERT OR REPLACE INTO snapshots (doc_id, model_fingerprint, token_pos, kind, section_idx, path, bytes, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      snapshot.docId, snapshot.modelFingerprint, snapshot.tokenPos, snapshot.kind, snapshot.sectionIdx ?? null,
      snapshot.path, snapshot.bytes, now(),
    );
    return this.snapshotAt(snapshot.docId, snapshot.modelFingerprint, snapshot.tokenPos)!;
  }

  /** Oldest (lowest position) first. */
  listSnapshots(docId: string, modelFingerprint: string): SnapshotRow[] {
    return this.db.all(
      'SELECT * FROM snapshots WHERE doc_id = ? AND model_fingerprint = ? ORDER BY token_pos',
      docId, modelFingerprint,
    ).map(toSnapshot);
  }

  snapshotAt(docId: string, modelFingerprint: string, tokenPos: number): SnapshotRow | null {
    const row = this.db.get(
      'SELECT * FROM snapshots WHERE doc_id = ? AND model_fingerprint = ? AND token_pos = ?',
      docId, modelFingerprint, tokenPos,
    );
    return row ? toSnapshot(row) : null;
  }

  latestSnapshot(docId: string, modelFingerprint: string): SnapshotRow | null {
    const row = this.db.get(
      'SELECT * FROM snapshots WHERE doc_id = ? AND model_fingerprint = ? ORDER BY token_pos DESC LIMIT 1',
      docId, modelFingerprint,
    );
    return row ? toSnapshot(row) : null;
  }

  snapshotAtOrBefore(docId: string, modelFingerprint: string, tokenPos: number): SnapshotRow | null {
    const row = this.db.get(
      `SELECT * FROM snapshots WHERE doc_id = ? AND model_fingerprint = ? AND token_pos <= ?
       ORDER BY token_pos DESC LIMIT 1`,
      docId, modelFingerprint, tokenPos,
    );
    return row ? toSnapshot(row) : null;
  }

  finalSnapshot(docId: string, modelFingerprint: string): SnapshotRow | null {
    const row = this.db.get(
      `SELECT * FROM snapshots WHERE doc_id = ? AND model_fingerprint = ? AND kind = 'final'
       ORDER BY token_pos DESC LIMIT 1`,
      docId, modelFingerprint,
    );
    return row ? toSnapshot(row) : null;
  }

  /** Deletes one snapshot (rows and file), e.g. when thinning periodic snapshots. */
  deleteSnapshot(docId: string, modelFingerprint: string, tokenPos: number): boolean {
    const snapshot = this.snapshotAt(docId, modelFingerprint, tokenPos);
    if (!snapshot) return false;
    this.db.run('DELETE FROM snapshots WHERE doc_id = ? AND model_fingerprint = ? AND token_pos = ?',
      docId, modelFingerprint, tokenPos);
    this.removeFiles([snapshot.path]);
    return true;
  }

  /** Deletes snapshots past `tokenPos` (rows, then their files) and returns them. */
  deleteSnapshotsAfter(docId: string, modelFingerprint: string, tokenPos: number): SnapshotRow[] {
    const removed = this.db.transaction(() => {
      const rows = this.db.all(
        'SELECT * FROM snapshots WHERE doc_id = ? AND model_fingerprint = ? AND token_pos > ? ORDER BY token_pos',
        docId, modelFingerprint, tokenPos,
      ).map(toSnapshot);
      this.db.run('DELETE FROM snapshots WHERE doc_id = ? AND model_fingerprint = ? AND token_pos > ?',
        docId, modelFingerprint, tokenPos);
      return rows;
    });
    this.removeFiles(removed.map((snapshot) => snapshot.path));
    return removed;
  }

  // ---- conversations and messages ----

  createConversation(input: NewConversation): ConversationRow {
    const timestamp = now();
    const id = newId();
    this.db.run(
      `INSERT INTO conversations (id, doc_id, collection_id, title, model_fingerprint, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      id, input.docId ?? null, input.collectionId ?? null, input.title, input.modelFingerprint ?? null, timestamp, timestamp,
    );
    return this.getConversation(id)!;
  }

  getConversation(id: string): ConversationRow | null {
    const row = this.db.get('SELECT * FROM conversations WHERE id = ?', id);
    return row ? toConversation(row) : null;
  }

  /** Most recently active first; filtered by document and/or collection (a string is a document id). */
  listConversations(filter: string | ConversationFilter = {}): ConversationRow[] {
    if (typeof filter === 'string') filter = { docId: filter };
    const conditions: string[] = [];
    const params: SqlValue[] = [];
    if (filter.docId !== undefined) {
      conditions.push('doc_id = ?');
      params.push(filter.docId);
    }
    if (filter.collectionId !== undefined) {
      conditions.push('collection_id = ?');
      params.push(filter.collectionId);
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    return this.db.all(`SELECT * FROM conversations ${where} ORDER BY updated_at DESC, rowid DESC`, ...params)
      .map(toConversation);
  }

  getConversationWithMessages(id: string): ConversationWithMessages | null {
    const conversation = this.getConversation(id);
    return conversation ? { ...conversation, messages: this.listMessages(id) } : null;
  }

  renameConversation(id: string, title: string): ConversationRow {
    const { changes } = this.db.run('UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?', title, now(), id);
    if (changes === 0) throw new NotFoundError('conversation', id);
    return this.getConversation(id)!;
  }

  /** Where the model state after the last message is saved (null: none saved). */
  setConversationState(id: string, statePath: string | null): ConversationRow {
    const { changes } = this.db.run('UPDATE conversations SET state_path = ?, updated_at = ? WHERE id = ?', statePath, now(), id);
    if (changes === 0) throw new NotFoundError('conversation', id);
    return this.getConversation(id)!;
  }

  addMessage(conversationId: string, message: NewMessage): MessageRow {
    oneOf(message.role, MESSAGE_ROLES, 'message role');
    return this.db.transaction(() => {
      const timestamp = now();
      const { changes } = this.db.run('UPDATE conversations SET updated_at = ? WHERE id = ?', timestamp, conversationId);
      if (changes === 0) throw new NotFoundError('conversation', conversationId);
      const row = this.db.get(
        `INSERT INTO messages (conversation_id, role, text, citations_json, created_at) VALUES (?, ?, ?, ?, ?)
         RETURNING *`,
        conversationId, message.role, message.text, JSON.stringify(message.citations ?? []), timestamp,
      );
      return toMessage(row!);
    });
  }

  /** In the order they were added. */
  listMessages(conversationId: string): MessageRow[] {
    return this.db.all('SELECT * FROM messages WHERE conversation_id = ? ORDER BY id', conversationId).map(toMessage);
  }

  /** Deletes the conversation, its messages and its saved state file. */
  deleteConversation(id: string): boolean {
    const conversation = this.getConversation(id);
    if (!conversation) return false;
    this.db.transaction(() => {
      this.db.run('DELETE FROM messages WHERE conversation_id = ?', id);
      this.db.run('DELETE FROM conversations WHERE id = ?', id);
    });
    if (conversation.statePath) this.removeFiles([conversation.statePath]);
    return true;
  }

  // ---- summaries (a cache per document, model, scope and section) ----

  getSummary(docId: string, modelFingerprint: string, scope: SummaryScope,
             sectionIdx = DOCUMENT_SCOPE_SECTION_IDX): SummaryRow | null {
    const row = this.db.get(
      'SELECT * FROM summaries WHERE doc_id = ? AND model_fingerprint = ? AND scope = ? AND section_idx = ?',
      ...summaryKey(docId, modelFingerprint, scope, sectionIdx),
    );
    return row ? toSummary(row) : null;
  }

  listSummaries(docId: string, modelFingerprint: string): SummaryRow[] {
    return this.db.all(
      `SELECT * FROM summaries WHERE doc_id = ? AND model_fingerprint = ?
       ORDER BY scope = 'document' DESC, section_idx`,
      docId, modelFingerprint,
    ).map(toSummary);
  }

  putSummary(summary: NewSummary): SummaryRow {
    const key = summaryKey(summary.docId, summary.modelFingerprint, summary.scope, summary.sectionIdx);
    this.db.run(
      `INSERT OR REPLACE INTO summaries (doc_id, model_fingerprint, scope, section_idx, text, key_passages_json, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ...key, summary.text, JSON.stringify(summary.keyPassages), now(),
    );
    return this.getSummary(...key)!;
  }

  deleteSummary(docId: string, modelFingerprint: string, scope: SummaryScope,
                sectionIdx = DOCUMENT_SCOPE_SECTION_IDX): boolean {
    return this.db.run(
      'DELETE FROM summaries WHERE doc_id = ? AND model_fingerprint = ? AND scope = ? AND section_idx = ?',
      ...summaryKey(docId, modelFingerprint, scope, sectionIdx),
    ).changes > 0;
  }

  /** Drops a document's cached summaries, of one model or of all. */
  deleteSummaries(docId: string, modelFingerprint?: string): number {
    return modelFingerprint === undefined
      ? this.db.run('DELETE FROM summaries WHERE doc_id = ?', docId).changes
      : this.db.run('DELETE FROM summaries WHERE doc_id = ? AND model_fingerprint = ?', docId, modelFingerprint).changes;
  }

  // ---- settings (JSON values) ----

  getSetting<T>(key: string, fallback: T): T {
    const row = this.db.get('SELECT value_json FROM settings WHERE key = ?', key);
    if (!row) return fallback;
    try {
      return JSON.parse(String(row.value_json)) as T;
    } catch {
      return fallback;
    }
  }

  /** Stores any JSON-serialisable value; undefined removes the setting. */
  setSetting(key: string, value: unknown): void {
    if (value === undefined) {
      this.deleteSetting(key);
      return;
    }
    this.db.run(
      'INSERT INTO settings (key, value_json) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json',
      key, JSON.stringify(value),
    );
  }

  deleteSetting(key: string): boolean {
    return this.db.run('DELETE FROM settings WHERE key = ?', key).changes > 0;
  }

  allSettings(): Record<string, unknown> {
    const settings: Record<string, unknown> = {};
    for (const row of this.db.all('SELECT key, value_json FROM settings ORDER BY key')) {
      try {
        settings[String(row.key)] = JSON.parse(String(row.value_json));
      } catch {
        // A value that is not JSON cannot have been written here; leave it out.
      }
    }
    return settings;
  }

  // ---- collections ----

  createCollection(name: string): CollectionRow {
    const id = newId();
    this.db.run('INSERT INTO collections (id, name, created_at) VALUES (?, ?, ?)', id, nonEmpty(name, 'collection name'), now());
    return this.getCollection(id)!;
  }

  getCollection(id: string): CollectionRow | null {
    const row = this.db.get('SELECT * FROM collections WHERE id = ?', id);
    return row ? toCollection(row) : null;
  }

  listCollections(): CollectionRow[] {
    return this.db.all('SELECT * FROM collections ORDER BY name COLLATE NOCASE, created_at').map(toCollection);
  }

  renameCollection(id: string, name: string): CollectionRow {
    const { changes } = this.db.run('UPDATE collections SET name = ? WHERE id = ?', nonEmpty(name, 'collection name'), id);
    if (changes === 0) throw new NotFoundError('collection', id);
    return this.getCollection(id)!;
  }

  /** Deletes the collection and its conversations; its documents stay, outside any collection. */
  deleteCollection(id: string): boolean {
    const files: string[] = [];
    const removed = this.db.transaction(() => {
      if (!this.getCollection(id)) return false;
      for (const row of this.db.all('SELECT state_path FROM conversations WHERE collection_id = ? AND state_path IS NOT NULL', id)) {
        files.push(String(row.state_path));
      }
      this.db.run('UPDATE documents SET collection_id = NULL, updated_at = ? WHERE collection_id = ?', now(), id);
      this.db.run('DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE collection_id = ?)', id);
      this.db.run('DELETE FROM conversations WHERE collection_id = ?', id);
      this.db.run('DELETE FROM collections WHERE id = ?', id);
      return true;
    });
    if (removed) this.removeFiles(files);
    return removed;
  }

  setDocumentCollection(docId: string, collectionId: string | null): DocumentRow {
    if (collectionId !== null && !this.getCollection(collectionId)) throw new NotFoundError('collection', collectionId);
    return this.updateDocument(docId, { collectionId });
  }

  // ---- helpers ----

  private requireDocument(id: string): DocumentRow {
    const doc = this.getDocument(id);
    if (!doc) throw new NotFoundError('document', id);
    return doc;
  }

  /** Best-effort removal of files this library tracks; never touches anything outside the data directory. */
  private removeFiles(files: string[]): void {
    for (const file of files) {
      if (!isInside(this.paths.root, file)) continue;
      try {
        fs.rmSync(file, { force: true });
      } catch {
        // Already gone or in use; the rows are what matter.
      }
    }
  }
}
