// Where a user's data lives under the data directory.
//
//   DATA/library.sqlite
//   DATA/documents/<docId>/text.txt
//   DATA/documents/<docId>/tokens.bin
//   DATA/documents/<docId>/states/<fingerprint>/<tokenPos>.state
//   DATA/documents/<docId>/states/<fingerprint>/final.state
//   DATA/conversations/<conversationId>.state

import * as path from 'node:path';

/** Snapshot file names are zero-padded so a directory listing sorts by position. */
export const TOKEN_POS_DIGITS = 12;

const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** Rejects anything that could leave its folder when used as a file name (ids come from callers). */
export function safeName(value: string, what: string): string {
  if (!SAFE_NAME.test(value) || value.length > 200) {
    throw new Error(`${what} is not usable as a file name: ${JSON.stringify(value)}`);
  }
  return value;
}

export function padTokenPos(tokenPos: number): string {
  if (!Number.isSafeInteger(tokenPos) || tokenPos < 0) {
    throw new Error(`token position must be a non-negative integer, got ${tokenPos}`);
  }
  return String(tokenPos).padStart(TOKEN_POS_DIGITS, '0');
}

/** True when `target` is `root` or lies below it. */
export function isInside(root: string, target: string): boolean {
  const relative = path.relative(path.resolve(root), path.resolve(target));
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

export interface DataPaths {
  root: string;
  databasePath(): string;
  documentsDir(): string;
  conversationsDir(): string;
  documentDir(docId: string): string;
  textPath(docId: string): string;
  tokensPath(docId: string): string;
  statesDir(docId: string, modelFingerprint: string): string;
  snapshotPath(docId: string, modelFingerprint: string, tokenPos: number): string;
  finalStatePath(docId: string, modelFingerprint: string): string;
  conversationStatePath(conversationId: string): string;
}

export function dataPaths(dataDir: string): DataPaths {
  const root = path.resolve(dataDir);
  const documentsDir = path.join(root, 'documents');
  const conversationsDir = path.join(root, 'conversations');
  const documentDir = (docId: string) => path.join(documentsDir, safeName(docId, 'document id'));
  const statesDir = (docId: string, modelFingerprint: string) =>
    path.join(documentDir(docId), 'states', safeName(modelFingerprint, 'model fingerprint'));
  return {
    root,
    databasePath: () => path.join(root, 'library.sqlite'),
    documentsDir: () => documentsDir,
    conversationsDir: () => conversationsDir,
    documentDir,
    textPath: (docId) => path.join(documentDir(docId), 'text.txt'),
    tokensPath: (docId) => path.join(documentDir(docId), 'tokens.bin'),
    statesDir,
    snapshotPath: (docId, modelFingerprint, tokenPos) =>
      path.join(statesDir(docId, modelFingerprint), `${padTokenPos(tokenPos)}.state`),
    finalStatePath: (docId, modelFingerprint) => path.join(statesDir(docId, modelFingerprint), 'final.state'),
    conversationStatePath: (conversationId) =>
      path.join(conversationsDir, `${safeName(conversationId, 'conversation id')}.state`),
  };
}
