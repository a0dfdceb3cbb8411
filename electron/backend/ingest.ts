// One document's ingestion: read -> store text -> passages (tokenized) -> index -> stream the
// tokens through the model with snapshots. Every step is resumable: the text and the token
// stream are files written atomically, passages are idempotent by index, and the model resumes
// from its last snapshot (the state file is the source of truth for how far it has read).
import fs from 'node:fs';
import path from 'node:path';
import type { IngestPhase, IngestProgress } from '../api/types';
import type { Engine, State } from './engine/engine';
import { atomicWriteFile, dataPaths, type Library } from './library';
import { cutPassages } from './passages';
import { readDocument, type ReadResult } from './readers';

export interface IngestOptions {
  snapshotInterval: number;            // tokens between periodic snapshots
  signal: AbortSignal;
  onProgress: (p: IngestProgress) => void;
}

// Section-end snapshots only for sections at least this long (a code folder has thousands of
// tiny files; a snapshot per file would cost far more disk than it saves).
const MIN_SECTION_SNAPSHOT_TOKENS = 1024;
const PASSAGE_BATCH = 256;
const PROGRESS_INTERVAL_MS = 250;

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) {
    const error = new Error('ingestion cancelled');
    error.name = 'AbortError';
    throw error;
  }
}

/** Token stream file: little-endian int32 ids. */
function writeTokens(file: string, tokens: Int32Array): void {
  atomicWriteFile(file, Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength));
}

function readTokens(file: string): Int32Array {
  const bytes = fs.readFileSync(file);
  if (bytes.byteLength % 4 !== 0) throw new Error(`${file}: token file is truncated`);
  const copy = new Int32Array(bytes.byteLength / 4);
  Buffer.from(copy.buffer).set(bytes);
  return copy;
}

class ProgressReporter {
  private last = 0;
  private readonly started = Date.now();
  private startDone = -1;

  constructor(private readonly docId: string, private readonly emit: (p: IngestProgress) => void) {}

  report(phase: IngestPhase, done: number, total: number, force = false, rate?: number): void {
    const now = Date.now();
    if (!force && now - this.last < PROGRESS_INTERVAL_MS) return;
    this.last = now;
    if (this.startDone < 0 && phase === 'ingesting') this.startDone = done;
    const elapsed = (now - this.started) / 1000;
    const tokensPerSecond = rate ?? (phase === 'ingesting' && elapsed > 0 ? (done - Math.max(0, this.startDone)) / elapsed : 0);
    const etaSeconds = phase === 'ingesting' && tokensPerSecond > 0 ? (total - done) / tokensPerSecond : null;
    this.emit({ docId: this.docId, phase, done, total, tokensPerSecond, etaSeconds });
  }
}

/** Reads, stores and indexes the document unless that was finished before; returns the token stream. */
async function prepare(library: Library, engine: Engine, docId: string, progress: ProgressReporter,
                       signal: AbortSignal): Promise<Int32Array> {
  const doc = library.getDocument(docId);
  if (!doc) throw new Error(`document ${docId} does not exist`);
  const paths = dataPaths(library.dataDir);
  const tokenFile = paths.tokensPath(docId);
  if (doc.tokenCount > 0 && fs.existsSync(tokenFile) && library.passageCount(docId) > 0) {
    const tokens = readTokens(tokenFile);
    if (tokens.length === doc.tokenCount) return tokens;
  }

  library.updateDocument(docId, { status: 'reading', error: null });
  progress.report('reading', 0, doc.sourceBytes, true);
  const read: ReadResult = await readDocument(doc.sourcePath, { signal });
  throwIfAborted(signal);
  fs.mkdirSync(paths.documentDir(docId), { recursive: true });
  atomicWriteFile(paths.textPath(docId), read.text);
  library.replaceStructure(docId, { charCount: read.text.length, sections: read.sections, pages: read.pages });
  library.updateDocument(docId, { status: 'indexing', title: doc.title || read.title, format: read.format,
    charCount: read.text.length });

  // Passages and the token stream: [document start] + each passage's tokens.
  library.deletePassagesFrom(docId, 0);
  const chunks: Int32Array[] = [Int32Array.of(engine.documentStartToken)];
  let tokenPos = 1;
  let batch: Parameters<Library['addPassages']>[1] = [];
  const spans: { charStart: number; charEnd: number; tokenStart: number; tokenEnd: number }[] = [];
  const tokenize = (s: string) => engine.model.tokenizeSync(s);
  for (const p of cutPassages(read.text, read.sections, tokenize)) {
    const passage = { idx: p.idx, sectionIdx: p.sectionIdx, charStart: p.charStart, charEnd: p.charEnd,
      tokenStart: tokenPos, tokenEnd: tokenPos + p.tokens.length, text: read.text.slice(p.charStart, p.charEnd) };
    spans.push({ charStart: p.charStart, charEnd: p.charEnd, tokenStart: passage.tokenStart, tokenEnd: passage.tokenEnd });
    chunks.push(p.tokens);
    tokenPos = passage.tokenEnd;
    batch.push(passage);
    if (batch.length >= PASSAGE_BATCH) {
      library.addPassages(docId, batch);
      batch = [];
      progress.report('indexing', p.charEnd, read.text.length);
      throwIfAborted(signal);
      await new Promise((resolve) => setImmediate(resolve));   // let requests in between batches
    }
  }
  if (batch.length) library.addPassages(docId, batch);
  library.setSectionTokenRanges(docId, sectionTokenRanges(read.sections, spans));

  const tokens = new Int32Array(tokenPos);
  let offset = 0;
  for (const c of chunks) {
    tokens.set(c, offset);
    offset += c.length;
  }
  writeTokens(tokenFile, tokens);
  library.updateDocument(docId, { tokenCount: tokens.length });
  progress.report('indexing', read.text.length, read.text.length, true);
  return tokens;
}

/** Each section's token range: from its first passage to its last, nested sections included. */
export function sectionTokenRanges(sections: readonly { charStart: number; charEnd: number }[],
                                   spans: readonly { charStart: number; charEnd: number; tokenStart: number; tokenEnd: number }[]) {
  const firstAtOrAfter = (offset: number) => {
    let lo = 0;
    let hi = spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (spans[mid].charStart < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const out: { idx: number; tokenStart: number; tokenEnd: number }[] = [];
  sections.forEach((s, idx) => {
    const first = firstAtOrAfter(s.charStart);
    const end = firstAtOrAfter(s.charEnd);     // passages never cross a section boundary
    if (end > first) out.push({ idx, tokenStart: spans[first].tokenStart, tokenEnd: spans[end - 1].tokenEnd });
  });
  return out;
}

/** The outline level that divides the document (chapters): the shallowest with two or more sections. */
export function chapterLevel(sections: readonly { level: number; tokenEnd: number | null }[]): number {
  const counts = new Map<number, number>();
  for (const s of sections) if (s.tokenEnd !== null) counts.set(s.level, (counts.get(s.level) ?? 0) + 1);
  const levels = [...counts.keys()].sort((a, b) => a - b);
  return levels.find((l) => counts.get(l)! >= 2) ?? levels[0] ?? 1;
}

/** Token positions after which a snapshot is written (ascending, the last is the end). */
export function snapshotPoints(totalTokens: number, interval: number,
                               sectionEnds: { tokenEnd: number; tokens: number }[]): number[] {
  const points = new Set<number>();
  for (let p = interval; p < totalTokens; p += interval) points.add(p);
  for (const s of sectionEnds) if (s.tokens >= MIN_SECTION_SNAPSHOT_TOKENS && s.tokenEnd < totalTokens) points.add(s.tokenEnd);
  points.add(totalTokens);
  return [...points].sort((a, b) => a - b);
}

/** Loads the latest snapshot of this model, or a fresh state; deletes snapshots that do not load. */
async function resumeState(library: Library, engine: Engine, docId: string): Promise<State> {
  const fingerprint = engine.fingerprint;
  for (;;) {
    const snap = library.latestSnapshot(docId, fingerprint);
    if (!snap) return engine.model.createState();
    try {
      const state = await engine.model.loadState(snap.path);
      if (state.position === snap.tokenPos) return state;
      state.close();
    } catch {
      // A damaged or missing snapshot: fall back to the one before it.
    }
    library.deleteSnapshotsAfter(docId, fingerprint, snap.tokenPos - 1);
  }
}

export async function ingestDocument(library: Library, engine: Engine, docId: string, options: IngestOptions): Promise<void> {
  const { signal } = options;
  const progress = new ProgressReporter(docId, options.onProgress);
  const tokens = await prepare(library, engine, docId, progress, signal);
  const fingerprint = engine.fingerprint;
  const paths = dataPaths(library.dataDir);
  const outline = library.getSections(docId);
  const level = chapterLevel(outline);
  const sections = outline.filter((s) => s.tokenEnd !== null && s.level === level)
    .map((s) => ({ idx: s.idx, tokenEnd: s.tokenEnd as number, tokens: (s.tokenEnd as number) - (s.tokenStart as number) }));
  const sectionAt = new Map(sections.map((s) => [s.tokenEnd, s.idx]));
  const points = snapshotPoints(tokens.length, options.snapshotInterval, sections);

  library.updateDocument(docId, { status: 'ingesting', modelFingerprint: fingerprint, modelPath: engine.modelPath });
  const state = await engine.lock.run(() => resumeState(library, engine, docId));
  try {
    let pos = state.position;
    progress.report('ingesting', pos, tokens.length, true, 0);
    for (const point of points) {
      if (point <= pos) continue;
      throwIfAborted(signal);
      await engine.lock.run(async () => {
        await engine.model.ingest(state, tokens.subarray(pos, point), {
          signal,
          onProgress: (p) => progress.report('ingesting', pos + p.done, tokens.length, false, p.tokensPerSecond),
        });
        const final = point === tokens.length;
        const file = final ? paths.finalStatePath(docId, fingerprint) : paths.snapshotPath(docId, fingerprint, point);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        await state.save(file);
        library.addSnapshot({ docId, modelFingerprint: fingerprint, tokenPos: point,
          kind: final ? 'final' : sectionAt.has(point) ? 'section' : 'periodic',
          sectionIdx: sectionAt.get(point) ?? null, path: file, bytes: fs.statSync(file).size });
        library.updateDocument(docId, { tokensIngested: point });
      });
      pos = point;
    }
    library.updateDocument(docId, { status: 'ready', tokensIngested: tokens.length });
    progress.report('done', tokens.length, tokens.length, true);
  } finally {
    state.close();
  }
}
