// Answers a question over one document or several: BM25 retrieval, then the model continues
// from the document's final state (it has read the whole text) with the retrieved passages
// and the question, and the answer streams out with numbered citations.
import fs from 'node:fs';
import path from 'node:path';
import type { AnswerResult, Citation } from '../api/types';
import { ApiError } from '../api/requests';
import { ANSWER_REPETITION, type Engine, type State } from './engine/engine';
import type { SpeculativeSetting } from './engine/speculative-choice';
import { locationOf } from './citations';
import { dataPaths, type Library } from './library';
import type { StoredTexts } from './texts';

export interface AskRequest {
  requestId: string;
  question: string;
  docIds: string[];
  conversationId?: string;
  maxTokens: number;
  temperature: number;
  speculative: SpeculativeSetting;
  signal: AbortSignal;
  onToken: (text: string) => void;
}

const PASSAGES_IN_PROMPT = 4;
const PASSAGE_PROMPT_CHARS = 700;

// Control characters (a small model can emit them) are dropped: they do not belong in answers.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;
const printable = (text: string) => text.replace(CONTROL, '');

function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const cut = flat.lastIndexOf(' ', max);
  return `${flat.slice(0, cut > max / 2 ? cut : max)} ...`;
}

export function buildPrompt(question: string, citations: readonly Citation[], followUp: boolean): string {
  const lines = [followUp ? '\n\n' : '\n\n', 'Passages:\n'];
  for (const c of citations) lines.push(`[${c.n}] (${c.location}) ${clip(c.text, PASSAGE_PROMPT_CHARS)}\n`);
  lines.push(`\nQuestion: ${question.trim()}\nAnswer:`);
  return lines.join('');
}

/** Citations for the best passages of `docIds`, numbered from 1. */
export function retrieve(library: Library, texts: StoredTexts, question: string, docIds: string[],
                         limit = PASSAGES_IN_PROMPT): Citation[] {
  const hits = library.search(question, { docIds, limit });
  const structure = new Map<string, { sections: ReturnType<Library['getSections']>; pages: ReturnType<Library['getPages']> }>();
  return hits.map((hit, i) => {
    let doc = structure.get(hit.docId);
    if (!doc) {
      doc = { sections: library.getSections(hit.docId), pages: library.getPages(hit.docId) };
      structure.set(hit.docId, doc);
    }
    const section = hit.sectionIdx === null ? null : doc.sections.find((s) => s.idx === hit.sectionIdx) ?? null;
    return {
      n: i + 1,
      docId: hit.docId,
      docTitle: hit.docTitle,
      passageIdx: hit.passageIdx,
      text: hit.text,
      sectionLabel: section?.label ?? null,
      location: locationOf(section, doc.pages, hit.charStart, () => texts.get(hit.docId), hit.charEnd),
      charStart: hit.charStart,
      charEnd: hit.charEnd,
      score: hit.score,
    };
  });
}

async function startingState(library: Library, engine: Engine, docIds: string[], best: string | undefined,
                             conversationState: string | null): Promise<State> {
  if (conversationState && fs.existsSync(conversationState)) {
    try {
      return await engine.model.loadState(conversationState);
    } catch {
      // A damaged conversation state: start again from the document.
    }
  }
  const source = best ?? docIds[0];
  const snap = source ? library.finalSnapshot(source, engine.fingerprint) : null;
  if (!snap) return engine.model.createState();
  try {
    return await engine.model.loadState(snap.path);
  } catch (error) {
    // The document must be read again from its last good snapshot (documents.resume does that).
    library.updateDocument(source, { status: 'interrupted' });
    const title = library.getDocument(source)?.title ?? source;
    throw new ApiError('STATE_DAMAGED', `the saved model state of "${title}" cannot be used ` +
      `(${error instanceof Error ? error.message : String(error)}); resume the document to read it again from its last good snapshot`);
  }
}

export async function ask(library: Library, engine: Engine, texts: StoredTexts, req: AskRequest): Promise<AnswerResult> {
  const started = Date.now();
  for (const id of req.docIds) {
    const doc = library.getDocument(id);
    if (!doc) throw new ApiError('NOT_FOUND', `no document ${id}`);
    if (!library.finalSnapshot(id, engine.fingerprint)) {
      throw new ApiError('NOT_READY', `"${doc.title}" has not been read by this model yet (status: ${doc.status})`);
    }
  }
  let conversation = req.conversationId ? library.getConversation(req.conversationId) : null;
  if (req.conversationId && !conversation) throw new ApiError('NOT_FOUND', `no conversation ${req.conversationId}`);
  if (!conversation) {
    conversation = library.createConversation({ docId: req.docIds.length === 1 ? req.docIds[0] : null,
      title: clip(req.question, 80), modelFingerprint: engine.fingerprint });
  }
  const citations = retrieve(library, texts, req.question, req.docIds);
  const followUp = Boolean(conversation.statePath);
  const prompt = buildPrompt(req.question, citations, followUp);

  let answer = '';
  let firstTokenMs: number | null = null;
  const result = await engine.lock.run(async () => {
    const state = await startingState(library, engine, req.docIds, citations[0]?.docId, conversation!.statePath);
    try {
      const generation = engine.generate(state, {
        prompt, maxTokens: req.maxTokens, temperature: req.temperature, ...ANSWER_REPETITION,
        stop: ['\nQuestion:', '\nPassages:', '\n\n\n'], stopAtEos: true, signal: req.signal,
      }, req.speculative);
      for await (const { text } of generation) {
        if (firstTokenMs === null) firstTokenMs = Date.now() - started;
        const clean = printable(text);
        answer += clean;
        if (clean) req.onToken(clean);
      }
      const outcome = await generation.result;
      // Follow-ups continue from here: the question, passages and answer are in this state.
      const file = dataPaths(library.dataDir).conversationStatePath(conversation!.id);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      await state.save(file);
      library.setConversationState(conversation!.id, file);
      return outcome;
    } finally {
      state.close();
    }
  });
  const trimmed = answer.trim();
  library.addMessage(conversation.id, { role: 'user', text: req.question, citations: [] });
  library.addMessage(conversation.id, { role: 'assistant', text: trimmed, citations });
  return { requestId: req.requestId, conversationId: conversation.id, answer: trimmed, citations,
    stopReason: result.stopReason, nTokens: result.nTokens, tokensPerSecond: result.tokensPerSecond,
    tokensPerForward: result.speculative.draftHeads > 1 ? result.speculative.tokensPerForward : null, firstTokenMs };
}
