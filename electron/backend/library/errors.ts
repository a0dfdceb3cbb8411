// Errors callers may want to tell apart (an API maps them to status codes).

import type { DocumentRow } from './types';

export class NotFoundError extends Error {
  constructor(readonly what: string, readonly id: string, message = `no ${what} with id ${JSON.stringify(id)}`) {
    super(message);
    this.name = 'NotFoundError';
  }
}

export class AmbiguousDocumentError extends Error {
  constructor(readonly query: string, readonly candidates: DocumentRow[]) {
    super(`"${query}" matches ${candidates.length} documents; use one of these ids:\n`
      + candidates.map((doc) => `  ${doc.id}  ${doc.title}  (${doc.sourcePath})`).join('\n'));
    this.name = 'AmbiguousDocumentError';
  }
}

export class SchemaTooNewError extends Error {
  constructor(readonly file: string, readonly found: number, readonly supported: number) {
    super(`${file} has schema version ${found}, newer than this version of Folio understands (${supported}); `
      + 'update Folio or use another data directory');
    this.name = 'SchemaTooNewError';
  }
}
