import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DatabaseSync } from '@photostructure/sqlite';
import {
  AmbiguousDocumentError, atomicWriteFile, dataPaths, Library, NotFoundError, SCHEMA_VERSION, SchemaTooNewError,
  toFtsQuery, type Citation, type PassageInput,
} from '../backend/library';

const openLibraries: Library[] = [];
const tempDirs: string[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'folio-library-'));
  tempDirs.push(dir);
  return dir;
}

function open(dir: string): Library {
  const library = Library.open(dir);
  openLibraries.push(library);
  return library;
}

afterEach(() => {
  for (const library of openLibraries.splice(0)) library.close();
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function addDoc(library: Library, title = 'Moby Dick', sourcePath = `/books/${title}.txt`) {
  return library.createDocument({ title, sourcePath, format: 'text', sourceBytes: 1234 });
}

function passage(idx: number, text: string, tokensPerPassage = 100): PassageInput {
  return {
    idx, sectionIdx: Math.floor(idx / 10), charStart: idx * 1000, charEnd: idx * 1000 + text.length,
    tokenStart: 1 + idx * tokensPerPassage, tokenEnd: 1 + (idx + 1) * tokensPerPassage, text,
  };
}

/** Row counts of every table mentioning `docId`, read with a separate connection. */
function rowCounts(dbFile: string, docId: string): Record<string, number> {
  const db = new DatabaseSync(dbFile);
  try {
    const count = (sql: string) => Number((db.prepare(sql).get(docId) as { n: number }).n);
    return {
      documents: count('SELECT count(*) AS n FROM documents WHERE id = ?'),
      sections: count('SELECT count(*) AS n FROM sections WHERE doc_id = ?'),
      pages: count('SELECT count(*) AS n FROM pages WHERE doc_id = ?'),
      passages: count('SELECT count(*) AS n FROM passages WHERE doc_id = ?'),
      snapshots: count('SELECT count(*) AS n FROM snapshots WHERE doc_id = ?'),
      summaries: count('SELECT count(*) AS n FROM summaries WHERE doc_id = ?'),
      conversations: count('SELECT count(*) AS n FROM conversations WHERE doc_id = ?'),
      messages: count('SELECT count(*) AS n FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE doc_id = ?)'),
    };
  } finally {
    db.close();
  }
}

function ftsIntegrityCheck(dbFile: string): void {
  const db = new DatabaseSync(dbFile);
  try {
    db.exec("INSERT INTO passages_fts(passages_fts) VALUES ('integrity-check')");
  } finally {
    db.close();
  }
}

describe('schema', () => {
  it('creates the database and folders in an empty directory and reopens idempotently', () => {
    const dir = path.join(tempDir(), 'nested', 'data');
    const library = open(dir);
    expect(library.schemaVersion).toBe(SCHEMA_VERSION);
    expect(library.dataDir).toBe(path.resolve(dir));
    expect(fs.existsSync(path.join(dir, 'library.sqlite'))).toBe(true);
    expect(fs.statSync(path.join(dir, 'documents')).isDirectory()).toBe(true);
    const doc = addDoc(library);
    library.close();

    const again = open(dir);
    expect(again.schemaVersion).toBe(SCHEMA_VERSION);
    expect(again.listDocuments().map((d) => d.id)).toEqual([doc.id]);
    again.close();

    const raw = new DatabaseSync(path.join(dir, 'library.sqlite'));
    expect((raw.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode).toBe('wal');
    raw.close();
  });

  it('refuses a database from a newer version', () => {
    const dir = tempDir();
    open(dir).close();
    const raw = new DatabaseSync(path.join(dir, 'library.sqlite'));
    raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => Library.open(dir)).toThrow(SchemaTooNewError);
    expect(() => Library.open(dir)).toThrow(/newer than this version/);
  });
});

describe('documents', () => {
  it('goes through its lifecycle', () => {
    const library = open(tempDir());
    const doc = addDoc(library, 'Moby Dick', '/books/moby-dick.txt');
    expect(doc.id).toMatch(/^[a-z0-9]{10}$/);
    expect(doc).toMatchObject({ status: 'queued', tokensIngested: 0, charCount: 0, error: null, collectionId: null });
    expect(Date.parse(doc.createdAt)).not.toBeNaN();

    const updated = library.updateDocument(doc.id, { status: 'error', error: 'boom', tokenCount: 42, modelFingerprint: 'fp1' });
    expect(updated).toMatchObject({ status: 'error', error: 'boom', tokenCount: 42, modelFingerprint: 'fp1', title: 'Moby Dick' });
    expect(library.updateDocument(doc.id, { error: null }).error).toBeNull();
    expect(() => library.updateDocument(doc.id, { status: 'bogus' as never })).toThrow(/document status/);
    expect(() => library.updateDocument('nope', { title: 'x' })).toThrow(NotFoundError);
    expect(library.getDocument('nope')).toBeNull();

    library.replaceStructure(doc.id, {
      charCount: 5000,
      sections: [
        { label: 'Chapter 1', kind: 'chapter', level: 1, charStart: 0, charEnd: 2500 },
        { label: 'Chapter 2', kind: 'chapter', level: 1, charStart: 2500, charEnd: 5000 },
      ],
      pages: [{ page: 1, charStart: 0 }, { page: 2, charStart: 2000 }],
    });
    library.setSectionTokenRanges(doc.id, [{ idx: 0, tokenStart: 1, tokenEnd: 600 }, { idx: 1, tokenStart: 600, tokenEnd: 1200 }]);
    expect(library.getDocument(doc.id)!.charCount).toBe(5000);
    expect(library.getSections(doc.id).map((s) => [s.idx, s.label, s.page, s.tokenStart, s.tokenEnd]))
      .toEqual([[0, 'Chapter 1', 1, 1, 600], [1, 'Chapter 2', 2, 600, 1200]]);
    expect(library.getPages(doc.id)).toEqual([{ page: 1, charStart: 0 }, { page: 2, charStart: 2000 }]);
    expect(() => library.setSectionTokenRanges(doc.id, [{ idx: 9, tokenStart: 0, tokenEnd: 1 }])).toThrow(NotFoundError);

    library.addSnapshot({ docId: doc.id, modelFingerprint: 'fp1', tokenPos: 500, kind: 'periodic', path: '/x', bytes: 1 });
    library.addSnapshot({ docId: doc.id, modelFingerprint: 'fp2', tokenPos: 500, kind: 'periodic', path: '/y', bytes: 1 });
    library.updateDocument(doc.id, { tokensIngested: 500 });
    library.resetIngestion(doc.id, 'fp1');
    expect(library.getDocument(doc.id)!.tokensIngested).toBe(0);
    expect(library.listSnapshots(doc.id, 'fp1')).toEqual([]);
    expect(library.listSnapshots(doc.id, 'fp2')).toHaveLength(1);

    library.updateDocument(doc.id, { status: 'ingesting' });
    expect(library.interruptActiveDocuments()).toEqual([doc.id]);
    expect(library.getDocument(doc.id)!.status).toBe('interrupted');
  });

  it('finds documents by id, title or path, and names the candidates when ambiguous', () => {
    const library = open(tempDir());
    const moby = addDoc(library, 'Moby Dick', '/books/moby-dick.txt');
    const war = addDoc(library, 'War and Peace', '/books/war-and-peace.epub');
    const war2 = addDoc(library, 'War of the Worlds', '/books/wotw.txt');
    expect(library.findDocument(moby.id).id).toBe(moby.id);
    expect(library.findDocument('moby').id).toBe(moby.id);
    expect(library.findDocument('WAR AND').id).toBe(war.id);
    expect(library.findDocument('wotw.txt').id).toBe(war2.id);
    expect(library.findDocument('/books/war-and-peace.epub').id).toBe(war.id);
    let error: unknown;
    try {
      library.findDocument('war');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AmbiguousDocumentError);
    expect((error as AmbiguousDocumentError).candidates.map((d) => d.id).sort()).toEqual([war.id, war2.id].sort());
    expect((error as Error).message).toContain(war.id);
    expect((error as Error).message).toContain('War of the Worlds');
    expect(() => library.findDocument('nothing like it')).toThrow(NotFoundError);
    expect(() => library.findDocument('  ')).toThrow(NotFoundError);

    // An exact title wins over longer titles it prefixes.
    const short = addDoc(library, 'War', '/books/war.txt');
    expect(library.findDocument('war').id).toBe(short.id);
  });

  it('removes every row of a document and its folder', () => {
    const dir = tempDir();
    const library = open(dir);
    const doc = addDoc(library);
    const other = addDoc(library, 'Other');
    const paths = dataPaths(dir);
    atomicWriteFile(paths.textPath(doc.id), 'the text');
    const snapFile = paths.snapshotPath(doc.id, 'fp', 100);
    atomicWriteFile(snapFile, 'state');
    const conversationState = paths.conversationStatePath('c1');
    atomicWriteFile(conversationState, 'state');

    library.replaceStructure(doc.id, { charCount: 10, sections: [{ label: 'S', kind: 'chapter', level: 1, charStart: 0, charEnd: 10 }], pages: [{ page: 1, charStart: 0 }] });
    library.addPassages(doc.id, [passage(0, 'whale ahab sea'), passage(1, 'ishmael queequeg')]);
    library.addPassages(other.id, [passage(0, 'whale of another tale')]);
    library.addSnapshot({ docId: doc.id, modelFingerprint: 'fp', tokenPos: 100, kind: 'periodic', path: snapFile, bytes: 5 });
    library.putSummary({ docId: doc.id, modelFingerprint: 'fp', scope: 'document', sectionIdx: -1, text: 'sum', keyPassages: [] });
    const conversation = library.createConversation({ docId: doc.id, title: 'Q' });
    library.addMessage(conversation.id, { role: 'user', text: 'hi' });
    library.setConversationState(conversation.id, conversationState);
    expect(Object.values(rowCounts(paths.databasePath(), doc.id)).every((n) => n > 0)).toBe(true);

    expect(library.removeDocument(doc.id)).toBe(true);
    expect(library.removeDocument(doc.id)).toBe(false);
    expect(rowCounts(paths.databasePath(), doc.id)).toEqual({
      documents: 0, sections: 0, pages: 0, passages: 0, snapshots: 0, summaries: 0, conversations: 0, messages: 0,
    });
    expect(fs.existsSync(paths.documentDir(doc.id))).toBe(false);
    expect(fs.existsSync(conversationState)).toBe(false);
    expect(library.search('whale').map((h) => h.docId)).toEqual([other.id]);
    library.close();
    ftsIntegrityCheck(paths.databasePath());
  });
});

describe('passages and search', () => {
  it('re-adding passages after a crash leaves no duplicates, in the table or the index', () => {
    const dir = tempDir();
    const library = open(dir);
    const doc = addDoc(library);
    const first = Array.from({ length: 10 }, (_, i) => passage(i, `common words in passage number${i}`));
    library.addPassages(doc.id, first);
    expect(library.passageCount(doc.id)).toBe(10);
    expect(library.search('common', { limit: 100 })).toHaveLength(10);

    // A batch that fails half-way commits nothing.
    const broken = [passage(10, 'common new'), { ...passage(11, 'x'), text: null as unknown as string }];
    expect(() => library.addPassages(doc.id, broken)).toThrow();
    expect(library.passageCount(doc.id)).toBe(10);

    // Resume re-adds 5..14: the overlap replaces, the rest appends.
    const resumed = Array.from({ length: 10 }, (_, i) => passage(i + 5, `common words in passage number${i + 5}`));
    library.addPassages(doc.id, resumed);
    library.addPassages(doc.id, resumed);
    expect(library.passageCount(doc.id)).toBe(15);
    expect(library.search('common', { limit: 100 })).toHaveLength(15);
    expect(library.search('number7', { limit: 100 })).toHaveLength(1);

    // Replacing the text replaces the indexed words.
    library.addPassages(doc.id, [passage(3, 'completely different')]);
    expect(library.search('number3')).toEqual([]);
    expect(library.search('different').map((h) => h.passageIdx)).toEqual([3]);

    expect(library.getPassages(doc.id, { fromIdx: 12 }).map((p) => p.idx)).toEqual([12, 13, 14]);
    expect(library.getPassages(doc.id, { fromIdx: 2, limit: 2 }).map((p) => p.idx)).toEqual([2, 3]);
    expect(library.getPassage(doc.id, 4)?.text).toBe('common words in passage number4');
    expect(library.passagesInSection(doc.id, 1).map((p) => p.idx)).toEqual([10, 11, 12, 13, 14]);
    expect(library.passageAtToken(doc.id, 0)).toBeNull();
    expect(library.passageAtToken(doc.id, 1)?.idx).toBe(0);
    expect(library.passageAtToken(doc.id, 250)?.idx).toBe(2);
    expect(library.passageAtToken(doc.id, 301)?.idx).toBe(3);
    expect(library.passageAtToken(doc.id, 1_000_000)?.idx).toBe(14);

    expect(library.deletePassagesFrom(doc.id, 12)).toBe(3);
    expect(library.passageCount(doc.id)).toBe(12);
    expect(library.search('common', { limit: 100 })).toHaveLength(11);
    library.close();
    ftsIntegrityCheck(dataPaths(dir).databasePath());
  });

  it('ranks the passage with the rare query terms first, with its section label and a snippet', () => {
    const library = open(tempDir());
    const doc = addDoc(library);
    library.replaceStructure(doc.id, {
      charCount: 100_000,
      sections: [0, 1, 2].map((i) => ({ label: `Chapter ${i + 1}`, kind: 'chapter', level: 1, charStart: i * 10_000, charEnd: (i + 1) * 10_000 })),
      pages: [],
    });
    const filler = 'the ship sailed on across the sea and the sailors worked the ropes all day long';
    const passages = Array.from({ length: 30 }, (_, i) => passage(i, `${filler} ${filler}`));
    passages[17] = passage(17, `${filler} then the harpooner saw the albino leviathan breach near the ship`);
    library.addPassages(doc.id, passages);

    const hits = library.search('Where did the harpooner see the albino leviathan?', { highlight: { open: '[', close: ']' } });
    expect(hits[0]!.passageIdx).toBe(17);
    expect(hits[0]!.sectionLabel).toBe('Chapter 2');
    expect(hits[0]!.docTitle).toBe('Moby Dick');
    expect(hits[0]!.snippet).toContain('[harpooner]');
    for (let i = 1; i < hits.length; i++) expect(hits[i - 1]!.score).toBeGreaterThanOrEqual(hits[i]!.score);

    // Porter stemming and diacritics folding.
    expect(library.search('harpooners')[0]?.passageIdx).toBe(17);
    library.addPassages(doc.id, [passage(30, 'a café in Zürich')]);
    expect(library.search('cafe zurich')[0]?.passageIdx).toBe(30);
  });

  it('never throws on FTS5 syntax, quotes or empty input', () => {
    const library = open(tempDir());
    const doc = addDoc(library);
    library.addPassages(doc.id, [passage(0, 'NEAR the AND gate, "quoted" text: col*umn (paren) ^caret -minus +plus')]);
    const nasty = [
      '', '   ', '"', '""', '"unterminated', "'", '*', 'AND', 'OR NOT', 'NEAR(a b, 3)', 'text:gate', '^gate', 'gate*',
      '(((', ')', '-', '+', '{a b}', 'a AND OR b', 'col*umn', '\u0000', '💥', 'the of and', '?!.,;', 'NOT gate', 'quoted"',
    ];
    for (const query of nasty) expect(() => library.search(query)).not.toThrow();
    expect(library.search('')).toEqual([]);
    expect(library.search('?!.,;')).toEqual([]);
    expect(library.search('"quoted')).toHaveLength(1);
    expect(library.search('NEAR(gate')).toHaveLength(1);
    // Only stopwords: they are searched rather than dropped to nothing.
    expect(library.search('the AND')).toHaveLength(1);
    expect(toFtsQuery('the Whale, and "Ahab"')).toBe('"whale" OR "ahab"');
    expect(toFtsQuery('***')).toBeNull();
  });

  it('filters by document ids', () => {
    const library = open(tempDir());
    const a = addDoc(library, 'A');
    const b = addDoc(library, 'B');
    const c = addDoc(library, 'C');
    for (const doc of [a, b, c]) library.addPassages(doc.id, [passage(0, `lighthouse keeper of ${doc.title}`)]);
    expect(library.search('lighthouse')).toHaveLength(3);
    expect(library.search('lighthouse', { docIds: [b.id] }).map((h) => h.docId)).toEqual([b.id]);
    expect(library.search('lighthouse', { docIds: [a.id, c.id] }).map((h) => h.docId).sort()).toEqual([a.id, c.id].sort());
    expect(library.search('lighthouse', { docIds: [] })).toEqual([]);
    expect(library.search('lighthouse', { docIds: ["x' OR 1=1 --"] })).toEqual([]);
    expect(library.search('lighthouse', { limit: 2 })).toHaveLength(2);
  });
});

describe('snapshots', () => {
  it('orders by position and finds the one at or before a position', () => {
    const dir = tempDir();
    const library = open(dir);
    const doc = addDoc(library);
    const paths = dataPaths(dir);
    for (const pos of [3000, 1000, 2000]) {
      const file = paths.snapshotPath(doc.id, 'fp', pos);
      atomicWriteFile(file, 'state');
      library.addSnapshot({ docId: doc.id, modelFingerprint: 'fp', tokenPos: pos, kind: 'periodic', path: file, bytes: 5 });
    }
    const finalFile = paths.finalStatePath(doc.id, 'fp');
    atomicWriteFile(finalFile, 'final');
    library.addSnapshot({ docId: doc.id, modelFingerprint: 'fp', tokenPos: 3500, kind: 'final', path: finalFile, bytes: 5 });
    library.addSnapshot({ docId: doc.id, modelFingerprint: 'other', tokenPos: 9000, kind: 'section', sectionIdx: 2, path: '/elsewhere', bytes: 1 });

    expect(library.listSnapshots(doc.id, 'fp').map((s) => s.tokenPos)).toEqual([1000, 2000, 3000, 3500]);
    expect(library.latestSnapshot(doc.id, 'fp')?.tokenPos).toBe(3500);
    expect(library.snapshotAtOrBefore(doc.id, 'fp', 999)).toBeNull();
    expect(library.snapshotAtOrBefore(doc.id, 'fp', 1000)?.tokenPos).toBe(1000);
    expect(library.snapshotAtOrBefore(doc.id, 'fp', 2999)?.tokenPos).toBe(2000);
    expect(library.finalSnapshot(doc.id, 'fp')).toMatchObject({ tokenPos: 3500, kind: 'final', path: finalFile });
    expect(library.finalSnapshot(doc.id, 'other')).toBeNull();
    expect(library.latestSnapshot(doc.id, 'other')).toMatchObject({ kind: 'section', sectionIdx: 2 });

    // Same position again replaces rather than failing.
    library.addSnapshot({ docId: doc.id, modelFingerprint: 'fp', tokenPos: 2000, kind: 'section', path: paths.snapshotPath(doc.id, 'fp', 2000), bytes: 6 });
    expect(library.listSnapshots(doc.id, 'fp')).toHaveLength(4);
    expect(library.snapshotAtOrBefore(doc.id, 'fp', 2000)?.bytes).toBe(6);

    const removed = library.deleteSnapshotsAfter(doc.id, 'fp', 2000);
    expect(removed.map((s) => s.tokenPos)).toEqual([3000, 3500]);
    expect(library.listSnapshots(doc.id, 'fp').map((s) => s.tokenPos)).toEqual([1000, 2000]);
    expect(fs.existsSync(paths.snapshotPath(doc.id, 'fp', 3000))).toBe(false);
    expect(fs.existsSync(finalFile)).toBe(false);
    expect(fs.existsSync(paths.snapshotPath(doc.id, 'fp', 1000))).toBe(true);
    expect(library.listSnapshots(doc.id, 'other')).toHaveLength(1);
  });

  it('names snapshot files so they sort by position and stay inside the document folder', () => {
    const paths = dataPaths('/data');
    expect(paths.snapshotPath('abc', 'f1', 4096)).toBe(path.resolve('/data/documents/abc/states/f1/000000004096.state'));
    expect(paths.finalStatePath('abc', 'f1')).toBe(path.resolve('/data/documents/abc/states/f1/final.state'));
    expect(() => paths.documentDir('../etc')).toThrow();
    expect(() => paths.snapshotPath('abc', 'a/b', 1)).toThrow();
    expect(() => paths.snapshotPath('abc', 'f1', -1)).toThrow();
  });
});

describe('conversations, summaries, settings, collections', () => {
  it('stores conversations and their messages', () => {
    const library = open(tempDir());
    const doc = addDoc(library);
    const collection = library.createCollection('Sea stories');
    const onDoc = library.createConversation({ docId: doc.id, title: 'About whales', modelFingerprint: 'fp' });
    const onCollection = library.createConversation({ collectionId: collection.id, title: 'Across books' });
    expect(onDoc).toMatchObject({ docId: doc.id, collectionId: null, title: 'About whales', statePath: null });

    const citation: Citation = {
      n: 1, docId: doc.id, docTitle: 'Moby Dick', passageIdx: 3, text: 't', sectionLabel: null, location: 'p. 3',
      charStart: 0, charEnd: 1, score: 1.5,
    };
    library.addMessage(onDoc.id, { role: 'user', text: 'Who is Ahab?' });
    const answer = library.addMessage(onDoc.id, { role: 'assistant', text: 'The captain [1].', citations: [citation] });
    expect(answer).toMatchObject({ conversationId: onDoc.id, role: 'assistant', citations: [citation] });
    expect(() => library.addMessage('missing', { role: 'user', text: 'x' })).toThrow(NotFoundError);
    expect(() => library.addMessage(onDoc.id, { role: 'system' as never, text: 'x' })).toThrow(/message role/);

    expect(library.listMessages(onDoc.id).map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(library.getConversationWithMessages(onDoc.id)?.messages).toHaveLength(2);
    expect(library.listConversations(doc.id).map((c) => c.id)).toEqual([onDoc.id]);
    expect(library.listConversations({ collectionId: collection.id }).map((c) => c.id)).toEqual([onCollection.id]);
    expect(library.listConversations()).toHaveLength(2);

    expect(library.setConversationState(onDoc.id, '/data/conversations/x.state').statePath).toBe('/data/conversations/x.state');
    expect(library.renameConversation(onDoc.id, 'Ahab').title).toBe('Ahab');
    expect(library.deleteConversation(onDoc.id)).toBe(true);
    expect(library.getConversation(onDoc.id)).toBeNull();
    expect(library.listMessages(onDoc.id)).toEqual([]);
    expect(library.deleteConversation(onDoc.id)).toBe(false);
  });

  it('caches summaries by document, model, scope and section', () => {
    const library = open(tempDir());
    const doc = addDoc(library);
    const key = { passageIdx: 1, text: 'k', charStart: 0, charEnd: 1, score: 2 };
    library.putSummary({ docId: doc.id, modelFingerprint: 'fp', scope: 'section', sectionIdx: 2, text: 'two', keyPassages: [key] });
    library.putSummary({ docId: doc.id, modelFingerprint: 'fp', scope: 'document', sectionIdx: -1, text: 'all', keyPassages: [] });
    expect(library.getSummary(doc.id, 'fp', 'section', 2)).toMatchObject({ text: 'two', keyPassages: [key] });
    expect(library.getSummary(doc.id, 'fp', 'document')?.text).toBe('all');
    expect(library.getSummary(doc.id, 'other', 'document')).toBeNull();
    library.putSummary({ docId: doc.id, modelFingerprint: 'fp', scope: 'section', sectionIdx: 2, text: 'again', keyPassages: [] });
    expect(library.getSummary(doc.id, 'fp', 'section', 2)?.text).toBe('again');
    expect(library.listSummaries(doc.id, 'fp').map((s) => s.scope)).toEqual(['document', 'section']);
    expect(library.deleteSummary(doc.id, 'fp', 'section', 2)).toBe(true);
    expect(library.deleteSummaries(doc.id)).toBe(1);
  });

  it('round-trips settings as JSON', () => {
    const dir = tempDir();
    const library = open(dir);
    expect(library.getSetting('threads', 4)).toBe(4);
    library.setSetting('threads', 8);
    library.setSetting('temperature', 0.7);
    library.setSetting('recent', ['a', 'b']);
    library.setSetting('window', { width: 800, maximized: false });
    library.setSetting('threads', 6);
    library.close();
    const again = open(dir);
    expect(again.getSetting('threads', 4)).toBe(6);
    expect(again.getSetting('window', null)).toEqual({ width: 800, maximized: false });
    expect(again.allSettings()).toEqual({ recent: ['a', 'b'], temperature: 0.7, threads: 6, window: { width: 800, maximized: false } });
    again.setSetting('recent', undefined);
    expect(again.getSetting<string[]>('recent', [])).toEqual([]);
  });

  it('manages collections without deleting their documents', () => {
    const library = open(tempDir());
    const sea = library.createCollection('Sea');
    const land = library.createCollection('land');
    const doc = library.createDocument({ title: 'Moby Dick', sourcePath: '/m.txt', format: 'text', sourceBytes: 1, collectionId: sea.id });
    expect(doc.collectionId).toBe(sea.id);
    expect(library.listCollections().map((c) => c.name)).toEqual(['land', 'Sea']);
    expect(library.renameCollection(sea.id, 'Ocean').name).toBe('Ocean');
    expect(library.setDocumentCollection(doc.id, land.id).collectionId).toBe(land.id);
    expect(() => library.setDocumentCollection(doc.id, 'missing')).toThrow(NotFoundError);
    const conversation = library.createConversation({ collectionId: land.id, title: 'Q' });
    expect(library.deleteCollection(land.id)).toBe(true);
    expect(library.getDocument(doc.id)?.collectionId).toBeNull();
    expect(library.getConversation(conversation.id)).toBeNull();
    expect(library.listCollections().map((c) => c.name)).toEqual(['Ocean']);
    expect(() => library.createCollection('  ')).toThrow(/empty/);
  });
});

describe('atomicWriteFile', () => {
  it('replaces the file whole and leaves no temporary files', () => {
    const dir = tempDir();
    const file = path.join(dir, 'sub', 'out.txt');
    atomicWriteFile(file, 'first');
    atomicWriteFile(file, new Uint8Array([104, 105]));
    expect(fs.readFileSync(file, 'utf8')).toBe('hi');
    expect(fs.readdirSync(path.dirname(file))).toEqual(['out.txt']);
  });
});

describe('performance', () => {
  it('indexes 20k passages of ~300 words and searches them quickly', () => {
    const library = open(tempDir());
    const doc = addDoc(library, 'Big');
    // A deterministic Zipf-like vocabulary: a few common words, a long tail of rare ones.
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const vocabulary = Array.from({ length: 20_000 }, (_, i) => `w${i.toString(36)}${'aeiou'[i % 5]}n`);
    const word = () => vocabulary[Math.floor(vocabulary.length * random() ** 3)]!;
    const total = 20_000;
    const batch = 1000;
    let generated = 0;
    let insertMs = 0;
    for (let start = 0; start < total; start += batch) {
      const passages: PassageInput[] = [];
      for (let idx = start; idx < start + batch; idx++) {
        const words = Array.from({ length: 300 }, word);
        if (idx === 12_345) words.push('zanzibarian', 'quixotry');
        const text = words.join(' ');
        generated += text.length;
        passages.push({ idx, sectionIdx: null, charStart: idx * 2000, charEnd: idx * 2000 + text.length,
          tokenStart: idx * 400, tokenEnd: (idx + 1) * 400, text });
      }
      const t0 = performance.now();
      library.addPassages(doc.id, passages);
      insertMs += performance.now() - t0;
    }
    expect(library.passageCount(doc.id)).toBe(total);

    const t1 = performance.now();
    const rare = library.search('zanzibarian quixotry');
    const common = library.search(`${vocabulary[0]} ${vocabulary[1]} ${vocabulary[5]}`, { limit: 50 });
    const filtered = library.search(`${vocabulary[2]} ${vocabulary[3]}`, { docIds: [doc.id], limit: 20 });
    const searchMs = performance.now() - t1;
    expect(rare[0]?.passageIdx).toBe(12_345);
    expect(common).toHaveLength(50);
    expect(filtered).toHaveLength(20);
    const t2 = performance.now();
    library.passageAtToken(doc.id, 4_000_123);
    const lookupMs = performance.now() - t2;
    console.log(`library perf: ${total} passages, ${(generated / 1e6).toFixed(1)} MB text; `
      + `insert ${(insertMs / 1000).toFixed(2)} s, 3 searches ${searchMs.toFixed(0)} ms, token lookup ${lookupMs.toFixed(2)} ms`);
  });
});
