// Request methods, their validated inputs and their result types. Every transport validates
// the payload with these schemas before the backend sees it.
import { z } from 'zod';
import type {
  AnswerResult, CollectionInfo, ConversationInfo, DocumentDetail, DocumentInfo, EngineStatus, SummaryResult,
} from './types';

const id = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'not a valid id');
const text = (max: number) => z.string().max(max);

export const requestSchemas = {
  'documents.list': z.object({}).strict(),
  'documents.get': z.object({ docId: id }).strict(),
  'documents.add': z.object({
    paths: z.array(z.string().min(1).max(4096)).min(1).max(1000),
    collectionId: id.optional(),
  }).strict(),
  'documents.remove': z.object({ docId: id }).strict(),
  'documents.cancel': z.object({ docId: id }).strict(),
  'documents.resume': z.object({ docId: id }).strict(),
  'documents.reingest': z.object({ docId: id }).strict(),
  'documents.text': z.object({
    docId: id,
    charStart: z.number().int().min(0),
    charEnd: z.number().int().min(0),
  }).strict().refine((r) => r.charEnd >= r.charStart && r.charEnd - r.charStart <= 4_000_000,
    'charEnd must be >= charStart and the range at most 4M characters'),
  'ask': z.object({
    requestId: id,
    question: text(8000).min(1),
    docIds: z.array(id).max(200).optional(),
    collectionId: id.optional(),
    conversationId: id.optional(),
    maxTokens: z.number().int().min(1).max(2048).optional(),
  }).strict(),
  'summarize': z.object({
    requestId: id,
    docId: id,
    regenerate: z.boolean().optional(),
    maxSections: z.number().int().min(0).max(500).optional(),
  }).strict(),
  'summaries.get': z.object({ docId: id }).strict(),
  'cancel': z.object({ requestId: id }).strict(),
  'collections.list': z.object({}).strict(),
  'collections.create': z.object({ name: text(200).min(1) }).strict(),
  'collections.remove': z.object({ collectionId: id }).strict(),
  'documents.setCollection': z.object({ docId: id, collectionId: id.nullable() }).strict(),
  'conversations.list': z.object({ docId: id.optional() }).strict(),
  'conversations.get': z.object({ conversationId: id }).strict(),
  'settings.get': z.object({}).strict(),
  'settings.set': z.object({ key: z.enum(['snapshotInterval', 'threads', 'maxAnswerTokens', 'temperature', 'speculative']), value: z.number() }).strict(),
  'engine.status': z.object({}).strict(),
} as const;

export type Method = keyof typeof requestSchemas;
export type RequestParams<M extends Method> = z.infer<(typeof requestSchemas)[M]>;

export interface Settings {
  snapshotInterval: number;   // tokens between snapshots
  threads: number;            // 0 = all cores
  maxAnswerTokens: number;
  temperature: number;        // 0 = greedy
  speculative: number;        // drafting with the multi-token heads (same answers): 0 off, 1 on, 2 when it measured faster on the answers
}

export interface ResultTypes {
  'documents.list': DocumentInfo[];
  'documents.get': DocumentDetail;
  'documents.add': DocumentInfo[];
  'documents.remove': { removed: boolean };
  'documents.cancel': { cancelled: boolean };
  'documents.resume': DocumentInfo;
  'documents.reingest': DocumentInfo;
  'documents.text': { text: string };
  'ask': AnswerResult;
  'summarize': SummaryResult;
  'summaries.get': SummaryResult | null;
  'cancel': { cancelled: boolean };
  'collections.list': CollectionInfo[];
  'collections.create': CollectionInfo;
  'collections.remove': { removed: boolean };
  'documents.setCollection': DocumentInfo;
  'conversations.list': ConversationInfo[];
  'conversations.get': ConversationInfo;
  'settings.get': Settings;
  'settings.set': Settings;
  'engine.status': EngineStatus;
}

export const isMethod = (name: string): name is Method =>
  Object.prototype.hasOwnProperty.call(requestSchemas, name);

/** Validates a raw payload for `method`; throws an ApiError('INVALID_REQUEST') naming the problem. */
export function parseRequest<M extends Method>(method: M, params: unknown): RequestParams<M> {
  const result = requestSchemas[method].safeParse(params ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw new ApiError('INVALID_REQUEST', `${method}: ${where}${issue?.message ?? 'invalid payload'}`);
  }
  return result.data as RequestParams<M>;
}

export class ApiError extends Error {
  constructor(public readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}
