// The backend: owns the model, the library and the job queue, and implements every API method.
// Transports (the host process's message channel, the CLI) call `request`; events go to
// `onEvent` listeners.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { ApiError, parseRequest, type Method, type RequestParams, type ResultTypes, type Settings } from '../api/requests';
import type { BackendEvent, DocumentDetail, DocumentInfo, EngineStatus, IngestProgress } from '../api/types';
import { ask } from './ask';
import { Engine } from './engine/engine';
import { speculativeSetting } from './engine/speculative-choice';
import { ingestDocument } from './ingest';
import { Library } from './library';
import { cachedSummary, summarize } from './summarize';
import { StoredTexts } from './texts';

export interface BackendOptions {
  dataDir: string;
  modelPath: string;
  threads?: number;
  /** Start the documents a previous process left unfinished (server and app; not one-shot CLI commands). */
  resumeUnfinished?: boolean;
}

export const DEFAULT_SETTINGS: Settings = {
  snapshotInterval: 32768,
  threads: 0,
  maxAnswerTokens: 200,
  temperature: 0,
  speculative: 2,
};

const UNFINISHED = new Set(['queued', 'reading', 'indexing', 'ingesting']);

function abortError(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || (error as { code?: string }).code === 'ABORT_ERR');
}

export class Backend {
  private readonly events = new EventEmitter();
  private readonly queue: string[] = [];
  private readonly jobs = new Map<string, AbortController>();     // docId -> running/queued ingest
  private readonly requests = new Map<string, AbortController>(); // requestId -> ask/summarize
  private active: string | null = null;
  private pump: Promise<void> = Promise.resolve();
  private closed = false;

  private readonly texts: StoredTexts;

  private constructor(readonly library: Library, readonly engine: Engine) {
    this.texts = new StoredTexts(library.dataDir);
  }

  static async open(options: BackendOptions): Promise<Backend> {
    const library = Library.open(options.dataDir);
    let engine: Engine;
    try {
      const threads = options.threads ?? library.getSetting('threads', DEFAULT_SETTINGS.threads);
      engine = await Engine.load(options.modelPath, threads);
    } catch (error) {
      library.close();
      throw error;
    }
    const backend = new Backend(library, engine);
    // Whatever a previous process was doing when it stopped did not finish.
    for (const doc of library.listDocuments()) {
      if (UNFINISHED.has(doc.status)) {
        library.updateDocument(doc.id, { status: 'interrupted' });
        if (options.resumeUnfinished) backend.enqueue(doc.id);
      }
    }
    return backend;
  }

  onEvent(listener: (event: BackendEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  private emit(event: BackendEvent): void {
    this.events.emit('event', event);
  }

  settings(): Settings {
    const out = { ...DEFAULT_SETTINGS };
    for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof Settings)[]) {
      out[key] = this.library.getSetting(key, DEFAULT_SETTINGS[key]);
    }
    return out;
  }

  /** Busy and idle changes go to clients as they happen (the status bar). */
  private emitStatus(): void {
    if (!this.closed) this.emit({ type: 'engine', status: this.status() });
  }

  status(): EngineStatus {
    return {
      state: this.active || this.requests.size > 0 || this.engine.lock.busy ? 'busy' : 'ready',
      model: this.engine.describe(),
      activeJob: this.active,
      queue: [...this.queue],
      rssBytes: process.memoryUsage().rss,
      dataDir: this.library.dataDir,
    };
  }

  /** Validates and runs one API request. */
  async request<M extends Method>(method: M, params: unknown): Promise<ResultTypes[M]> {
    if (this.closed) throw new ApiError('CLOSED', 'the backend is shutting down');
    const input = parseRequest(method, params);
    return (await this.dispatch(method, input)) as ResultTypes[M];
  }

  private async dispatch<M extends Method>(method: M, input: RequestParams<M>): Promise<unknown> {
    const p = input as Record<string, unknown>;
    switch (method) {
      case 'documents.list':
        return this.library.listDocuments();
      case 'documents.get':
        return this.detail(p.docId as string);
      case 'documents.add':
        return this.add(p.paths as string[], p.collectionId as string | undefined);
      case 'documents.remove':
        return this.remove(p.docId as string);
      case 'documents.cancel':
        return { cancelled: this.cancelJob(p.docId as string) };
      case 'documents.resume':
        return this.resume(p.docId as string);
      case 'documents.reingest':
        return this.reingest(p.docId as string);
      case 'documents.text':
        return { text: this.text(p.docId as string, p.charStart as number, p.charEnd as number) };
      case 'ask':
        return this.ask(input as RequestParams<'ask'>);
      case 'summarize':
        return this.summarize(input as RequestParams<'summarize'>);
      case 'summaries.get':
        this.document(p.docId as string);
        return cachedSummary(this.library, this.engine, p.docId as string);
      case 'cancel': {
        const controller = this.requests.get(p.requestId as string);
        controller?.abort();
        return { cancelled: Boolean(controller) };
      }
      case 'collections.list':
        return this.library.listCollections();
      case 'collections.create':
        return this.library.createCollection(p.name as string);
      case 'collections.remove':
        return { removed: this.library.deleteCollection(p.collectionId as string) };
      case 'documents.setCollection': {
        this.document(p.docId as string);
        if (p.collectionId && !this.library.getCollection(p.collectionId as string)) {
          throw new ApiError('NOT_FOUND', `no collection ${p.collectionId}`);
        }
        const doc = this.library.setDocumentCollection(p.docId as string, (p.collectionId as string | null) ?? null);
        this.emit({ type: 'document', document: doc });
        return doc;
      }
      case 'conversations.list':
        return this.library.listConversations(p.docId as string | undefined);
      case 'conversations.get': {
        const conversation = this.library.getConversationWithMessages(p.conversationId as string);
        if (!conversation) throw new ApiError('NOT_FOUND', `no conversation ${p.conversationId}`);
        return conversation;
      }
      case 'settings.get':
        return this.settings();
      case 'settings.set':
        return this.setSetting(p.key as keyof Settings, p.value as number);
      case 'engine.status':
        return this.status();
      default:
        throw new ApiError('UNKNOWN_METHOD', `unknown method ${String(method)}`);
    }
  }

  private document(docId: string): DocumentInfo {
    const doc = this.library.getDocument(docId);
    if (!doc) throw new ApiError('NOT_FOUND', `no document ${docId}`);
    return doc;
  }

  private detail(docId: string): DocumentDetail {
    const doc = this.document(docId);
    return {
      ...doc,
      sections: this.library.getSections(docId),
      pages: this.library.getPages(docId),
      passageCount: this.library.passageCount(docId),
      snapshots: this.library.listSnapshots(docId, this.engine.fingerprint).length,
    };
  }

  private text(docId: string, start: number, end: number): string {
    this.document(docId);
    try {
      return this.texts.get(docId).slice(start, end);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ApiError('NOT_READY', 'the document has not been read yet');
      throw error;
    }
  }

  private add(paths: string[], collectionId?: string): DocumentInfo[] {
    // Every path is checked before anything is added, so a typo adds nothing.
    const sources = paths.map((raw) => {
      const source = path.resolve(raw);
      try {
        return { source, stat: fs.statSync(source) };
      } catch {
        throw new ApiError('NOT_FOUND', `${raw}: no such file or folder`);
      }
    });
    const known = new Map(this.library.listDocuments().map((d) => [d.sourcePath, d]));
    const out: DocumentInfo[] = [];
    for (const { source, stat } of sources) {
      const existing = known.get(source);
      if (existing) {
        if (existing.status !== 'ready' || existing.modelFingerprint !== this.engine.fingerprint) this.enqueue(existing.id);
        out.push(this.document(existing.id));
        continue;
      }
      const doc = this.library.createDocument({
        title: path.basename(source).replace(/\.[A-Za-z0-9]{1,5}$/, '') || source,
        sourcePath: source,
        format: stat.isDirectory() ? 'code' : 'text',
        sourceBytes: stat.isDirectory() ? 0 : stat.size,
        collectionId,
      });
      known.set(source, doc);
      this.emit({ type: 'document', document: doc });
      this.enqueue(doc.id);
      out.push(this.document(doc.id));
    }
    return out;
  }

  private remove(docId: string): { removed: boolean } {
    this.document(docId);
    this.cancelJob(docId);
    this.library.removeDocument(docId);
    this.texts.forget(docId);
    this.emit({ type: 'document-removed', docId });
    return { removed: true };
  }

  private resume(docId: string): DocumentInfo {
    const doc = this.document(docId);
    if (doc.status !== 'ready' || doc.modelFingerprint !== this.engine.fingerprint) this.enqueue(docId);
    return this.document(docId);
  }

  private reingest(docId: string): DocumentInfo {
    this.document(docId);
    this.cancelJob(docId);
    this.library.resetIngestion(docId, this.engine.fingerprint);
    this.enqueue(docId);
    return this.document(docId);
  }

  private setSetting(key: keyof Settings, value: number): Settings {
    const limits: Record<keyof Settings, [number, number]> = {
      snapshotInterval: [1024, 1 << 24], threads: [0, 256], maxAnswerTokens: [1, 2048], temperature: [0, 2],
      speculative: [0, 2],
    };
    const [lo, hi] = limits[key];
    if (!(value >= lo && value <= hi)) throw new ApiError('INVALID_REQUEST', `${key} must be between ${lo} and ${hi}`);
    this.library.setSetting(key, key === 'temperature' ? value : Math.round(value));
    if (key === 'threads') this.engine.setThreads(value);
    return this.settings();
  }

  // Jobs -------------------------------------------------------------------------------------

  private enqueue(docId: string): void {
    if (this.jobs.has(docId)) return;
    this.jobs.set(docId, new AbortController());
    this.queue.push(docId);
    this.library.updateDocument(docId, { status: 'queued', error: null });
    this.emit({ type: 'document', document: this.document(docId) });
    this.emitProgress({ docId, phase: 'queued', done: 0, total: 0, tokensPerSecond: 0, etaSeconds: null });
    this.pump = this.pump.then(() => this.runNext());
  }

  private cancelJob(docId: string): boolean {
    const controller = this.jobs.get(docId);
    if (!controller) return false;
    controller.abort();
    const queued = this.queue.indexOf(docId);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      this.jobs.delete(docId);
      this.library.updateDocument(docId, { status: 'cancelled' });
      this.emit({ type: 'document', document: this.document(docId) });
    }
    return true;
  }

  private readonly lastPhase = new Map<string, string>();

  /** Progress events; a document event too whenever the phase (and so the status) changes. */
  private emitProgress(progress: IngestProgress): void {
    this.emit({ type: 'progress', progress });
    if (this.lastPhase.get(progress.docId) === progress.phase) return;
    this.lastPhase.set(progress.docId, progress.phase);
    const doc = this.library.getDocument(progress.docId);
    if (doc) this.emit({ type: 'document', document: doc });
  }

  private async runNext(): Promise<void> {
    const docId = this.queue.shift();
    if (!docId || this.closed) return;
    const controller = this.jobs.get(docId)!;
    this.active = docId;
    this.emitStatus();
    try {
      await ingestDocument(this.library, this.engine, docId, {
        snapshotInterval: this.settings().snapshotInterval,
        signal: controller.signal,
        onProgress: (progress) => this.emitProgress(progress),
      });
    } catch (error) {
      if (this.library.getDocument(docId)) {
        const cancelled = abortError(error);
        const message = error instanceof Error ? error.message : String(error);
        this.library.updateDocument(docId, cancelled ? { status: this.closed ? 'interrupted' : 'cancelled' }
          : { status: 'error', error: message });
        this.emitProgress({ docId, phase: cancelled ? 'cancelled' : 'error', done: 0, total: 0, tokensPerSecond: 0,
          etaSeconds: null, message: cancelled ? undefined : message });
      }
    } finally {
      this.jobs.delete(docId);
      this.active = null;
      const doc = this.library.getDocument(docId);
      if (doc) this.emit({ type: 'document', document: doc });
      this.emitStatus();
    }
  }

  /** Resolves when the queue is empty (used by the CLI's `add`). */
  async idle(): Promise<void> {
    for (;;) {
      const current = this.pump;
      await current;
      if (current === this.pump) return;
    }
  }

  // Ask and summarize ---------------------------------------------------------------------------

  private track<T>(requestId: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.requests.has(requestId)) throw new ApiError('INVALID_REQUEST', `request ${requestId} is already running`);
    const controller = new AbortController();
    this.requests.set(requestId, controller);
    this.emitStatus();
    return run(controller.signal).finally(() => {
      this.requests.delete(requestId);
      this.emitStatus();
    });
  }

  private ask(p: RequestParams<'ask'>) {
    let docIds = p.docIds ?? [];
    if (p.collectionId) docIds = this.library.listDocuments().filter((d) => d.collectionId === p.collectionId).map((d) => d.id);
    if (!docIds.length && p.conversationId) {
      const conversation = this.library.getConversation(p.conversationId);
      if (conversation?.docId) docIds = [conversation.docId];
    }
    if (!docIds.length) throw new ApiError('INVALID_REQUEST', 'ask: give docIds, a collectionId or a conversationId');
    const settings = this.settings();
    return this.track(p.requestId, async (signal) => ask(this.library, this.engine, this.texts, {
      speculative: speculativeSetting(settings.speculative),
      requestId: p.requestId, question: p.question, docIds, conversationId: p.conversationId,
      maxTokens: p.maxTokens ?? settings.maxAnswerTokens, temperature: settings.temperature,
      signal,
      onToken: (text) => this.emit({ type: 'answer-token', requestId: p.requestId, text }),
    }));
  }

  private summarize(p: RequestParams<'summarize'>) {
    const settings = this.settings();
    return this.track(p.requestId, async (signal) => summarize(this.library, this.engine, {
      speculative: speculativeSetting(settings.speculative),
      requestId: p.requestId, docId: p.docId, regenerate: p.regenerate ?? false, maxSections: p.maxSections ?? 200,
      temperature: settings.temperature, signal,
      onToken: (sectionIdx, text) => this.emit({ type: 'summary-token', requestId: p.requestId, sectionIdx, text }),
      onSection: (summary) => this.emit({ type: 'summary-section', requestId: p.requestId, summary }),
    }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const controller of this.jobs.values()) controller.abort();
    for (const controller of this.requests.values()) controller.abort();
    await this.pump.catch(() => undefined);
    this.engine.close();
    this.library.close();
  }
}
