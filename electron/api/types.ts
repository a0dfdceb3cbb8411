// The typed contract between the UI (over IPC or HTTP/WebSocket) and the backend.
// It depends on nothing but zod, so every side can import it.

export type DocumentFormat = 'text' | 'markdown' | 'pdf' | 'epub' | 'docx' | 'html' | 'code';
export type DocumentStatus =
  | 'queued' | 'reading' | 'indexing' | 'ingesting' | 'ready' | 'error' | 'interrupted' | 'cancelled';

export interface DocumentInfo {
  id: string;
  title: string;
  format: DocumentFormat;
  sourcePath: string;
  sourceBytes: number;
  charCount: number;
  tokenCount: number;
  tokensIngested: number;   // how many tokens of the text the model has read
  status: DocumentStatus;
  error: string | null;
  modelFingerprint: string | null;
  collectionId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface CollectionInfo {
  id: string;
  name: string;
  createdAt: string;
}

export interface SectionInfo {
  idx: number;
  label: string;
  kind: string;
  level: number;
  charStart: number;
  charEnd: number;
  tokenStart: number | null;
  tokenEnd: number | null;
  path: string | null;
}

export interface DocumentDetail extends DocumentInfo {
  sections: SectionInfo[];
  pages: { page: number; charStart: number }[];
  passageCount: number;
  snapshots: number;
}

export type IngestPhase = 'queued' | 'reading' | 'indexing' | 'ingesting' | 'done' | 'error' | 'cancelled';

export interface IngestProgress {
  docId: string;
  phase: IngestPhase;
  done: number;          // tokens (ingesting) or characters (indexing)
  total: number;
  tokensPerSecond: number;
  etaSeconds: number | null;
  message?: string;
}

export interface Citation {
  n: number;             // the [n] the answer refers to
  docId: string;
  docTitle: string;
  passageIdx: number;
  text: string;
  sectionLabel: string | null;
  location: string;      // "Chapter 12, p. 231" or "src/foo.ts:120"
  charStart: number;
  charEnd: number;
  score: number;
}

export interface AnswerResult {
  requestId: string;
  conversationId: string;
  answer: string;
  citations: Citation[];
  stopReason: string;
  nTokens: number;
  tokensPerSecond: number;
  /** Tokens per forward pass with speculative decoding; null when the answer decoded plainly. */
  tokensPerForward: number | null;
  firstTokenMs: number | null;
}

export interface KeyPassage {
  passageIdx: number;
  text: string;
  charStart: number;
  charEnd: number;
  score: number;
}

export interface SectionSummary {
  sectionIdx: number;    // -1: the whole document
  label: string;
  text: string;
  keyPassages: KeyPassage[];
  cached: boolean;
}

export interface SummaryResult {
  requestId: string;
  docId: string;
  document: SectionSummary;
  sections: SectionSummary[];
}

export interface ConversationInfo {
  id: string;
  docId: string | null;
  collectionId: string | null;
  title: string;
  createdAt: string;
  updatedAt: string;
  messages: { role: 'user' | 'assistant'; text: string; citations: Citation[]; createdAt: string }[];
}

export interface ModelDescription {
  path: string;
  name: string;
  parameters: number;
  predictionHeads: number;
  stateBytes: number;
  vocabulary: number;
  chunkSize: number;
  fingerprint: string;
  backend: 'cpu';
  threads: number;
  /** How fast answers and summaries decoded each way; null for a model without extra heads. */
  speculative: SpeculativeMeasurement | null;
}

export interface SpeculativeMeasurement {
  /** Decode tokens/s over the timed runs of each way (null before one). */
  plainTokensPerSecond: number | null;
  plainRuns: number;
  speculativeTokensPerSecond: number | null;
  speculativeRuns: number;
  /** Whether the automatic setting uses speculative decoding; null while it still alternates to measure. */
  faster: boolean | null;
  /** Once settled, one automatic decode in this many takes the other way. */
  exploreEvery: number;
}

export interface EngineStatus {
  state: 'starting' | 'ready' | 'busy' | 'restarting' | 'error';
  model: ModelDescription | null;
  activeJob: string | null;
  queue: string[];
  rssBytes: number;
  dataDir: string | null;
  message?: string;
}

// Events pushed to every client. Streams of one request carry its requestId.
export type BackendEvent =
  | { type: 'document'; document: DocumentInfo }
  | { type: 'document-removed'; docId: string }
  | { type: 'progress'; progress: IngestProgress }
  | { type: 'answer-token'; requestId: string; text: string }
  | { type: 'summary-token'; requestId: string; sectionIdx: number; text: string }
  | { type: 'summary-section'; requestId: string; summary: SectionSummary }
  | { type: 'engine'; status: EngineStatus };

export interface ApiErrorBody {
  code: string;
  message: string;
}
