export { Library, SNIPPET_OPEN, SNIPPET_CLOSE } from './library';
export { AmbiguousDocumentError, NotFoundError, SchemaTooNewError } from './errors';
export { atomicWriteFile } from './files';
export { dataPaths, padTokenPos, TOKEN_POS_DIGITS, type DataPaths } from './paths';
export { queryTerms, toFtsQuery } from './ftsQuery';
export { SCHEMA_VERSION } from './schema';
export * from './types';
