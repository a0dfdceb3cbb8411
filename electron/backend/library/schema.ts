// The library schema as an ordered list of migrations. Entry i takes the database from
// version i to version i + 1 (PRAGMA user_version). Append new steps; never edit old ones.

const STATUS_CHECK = `'queued', 'reading', 'indexing', 'ingesting', 'ready', 'error', 'interrupted', 'cancelled'`;

export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE collections (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
  );

  CREATE TABLE documents (
    id                 TEXT PRIMARY KEY,
    title              TEXT NOT NULL,
    source_path        TEXT NOT NULL,
    format             TEXT NOT NULL,
    source_bytes       INTEGER NOT NULL DEFAULT 0,
    char_count         INTEGER NOT NULL DEFAULT 0,
    token_count        INTEGER NOT NULL DEFAULT 0,
    status             TEXT NOT NULL DEFAULT 'queued' CHECK (status IN (${STATUS_CHECK})),
    error              TEXT,
    model_fingerprint  TEXT,
    model_path         TEXT,
    tokens_ingested    INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    collection_id      TEXT REFERENCES collections(id) ON DELETE SET NULL
  );
  CREATE INDEX documents_by_collection ON documents(collection_id);

  CREATE TABLE sections (
    doc_id       TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    label        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    level        INTEGER NOT NULL,
    char_start   INTEGER NOT NULL,
    char_end     INTEGER NOT NULL,
    token_start  INTEGER,
    token_end    INTEGER,
    path         TEXT,
    page         INTEGER,
    PRIMARY KEY (doc_id, idx)
  ) WITHOUT ROWID;

  CREATE TABLE pages (
    doc_id      TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page        INTEGER NOT NULL,
    char_start  INTEGER NOT NULL,
    PRIMARY KEY (doc_id, page)
  ) WITHOUT ROWID;

  CREATE TABLE passages (
    id           INTEGER PRIMARY KEY,
    doc_id       TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    section_idx  INTEGER,
    char_start   INTEGER NOT NULL,
    char_end     INTEGER NOT NULL,
    token_start  INTEGER,
    token_end    INTEGER,
    text         TEXT NOT NULL,
    UNIQUE (doc_id, idx)
  );
  CREATE INDEX passages_by_token ON passages(doc_id, token_start);
  CREATE INDEX passages_by_section ON passages(doc_id, section_idx, idx);

  CREATE VIRTUAL TABLE passages_fts USING fts5(
    text,
    content = 'passages',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
  );

  -- External-content FTS: the index must be told the old text to forget it, which the
  -- triggers do for every insert, delete and update of passages (cascades included).
  CREATE TRIGGER passages_fts_insert AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts(rowid, text) VALUES (new.id, new.text);
  END;
  CREATE TRIGGER passages_fts_delete AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts(passages_fts, rowid, text) VALUES ('delete', old.id, old.text);
  END;
  CREATE TRIGGER passages_fts_update AFTER UPDATE OF text ON passages BEGIN
    INSERT INTO passages_fts(passages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO passages_fts(rowid, text) VALUES (new.id, new.text);
  END;

  CREATE TABLE snapshots (
    doc_id             TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    model_fingerprint  TEXT NOT NULL,
    token_pos          INTEGER NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('periodic', 'section', 'final')),
    section_idx        INTEGER,
    path               TEXT NOT NULL,
    bytes              INTEGER NOT NULL,
    created_at         TEXT NOT NULL,
    PRIMARY KEY (doc_id, model_fingerprint, token_pos)
  ) WITHOUT ROWID;

  CREATE TABLE conversations (
    id                 TEXT PRIMARY KEY,
    doc_id             TEXT REFERENCES documents(id) ON DELETE CASCADE,
    collection_id      TEXT REFERENCES collections(id) ON DELETE CASCADE,
    title              TEXT NOT NULL,
    model_fingerprint  TEXT,
    state_path         TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
  );
  CREATE INDEX conversations_by_doc ON conversations(doc_id, updated_at);
  CREATE INDEX conversations_by_collection ON conversations(collection_id, updated_at);

  CREATE TABLE messages (
    id               INTEGER PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role             TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    text             TEXT NOT NULL,
    citations_json   TEXT NOT NULL DEFAULT '[]',
    created_at       TEXT NOT NULL
  );
  CREATE INDEX messages_by_conversation ON messages(conversation_id, id);

  CREATE TABLE summaries (
    doc_id             TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    model_fingerprint  TEXT NOT NULL,
    scope              TEXT NOT NULL CHECK (scope IN ('section', 'document')),
    section_idx        INTEGER NOT NULL DEFAULT -1,
    text               TEXT NOT NULL,
    key_passages_json  TEXT NOT NULL DEFAULT '[]',
    created_at         TEXT NOT NULL,
    PRIMARY KEY (doc_id, model_fingerprint, scope, section_idx)
  ) WITHOUT ROWID;

  CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value_json  TEXT NOT NULL
  ) WITHOUT ROWID;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
