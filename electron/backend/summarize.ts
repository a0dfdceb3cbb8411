// Summaries: each top-level section is summarised from the snapshot taken at its end (the model
// has just read it), then the whole document from the section summaries, continuing the final
// state. Key passages come alongside, chosen by centrality over the section's passages.
// Results are cached per document, model and section.
import type { KeyPassage, SectionSummary, SummaryResult } from '../api/types';
import { ApiError } from '../api/requests';
import { ANSWER_REPETITION, type Engine, type State } from './engine/engine';
import type { SpeculativeSetting } from './engine/speculative-choice';
import { chapterLevel } from './ingest';
import type { Library } from './library';

export interface SummarizeRequest {
  requestId: string;
  docId: string;
  regenerate: boolean;
  maxSections: number;
  temperature: number;
  speculative: SpeculativeSetting;
  signal: AbortSignal;
  onToken: (sectionIdx: number, text: string) => void;
  onSection: (summary: SectionSummary) => void;
}

const SECTION_SUMMARY_TOKENS = 96;
const DOCUMENT_SUMMARY_TOKENS = 192;
const KEY_PASSAGES = 3;
const STOPWORDS = new Set(('a an and are as at be but by for from has have he her his i in is it its of on or ' +
  'she that the their them they this to was were which with you not no so we our'.split(' ')));

function terms(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}_]{2,}/gu) ?? []) {
    if (!STOPWORDS.has(word)) counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return counts;
}

/**
 * The passages most similar to the rest of their group (degree centrality over TF-IDF cosine
 * similarities, LexRank without the power iteration): the ones that say what the section is about.
 */
export function keyPassages(passages: { idx: number; text: string; charStart: number; charEnd: number }[],
                            count = KEY_PASSAGES): KeyPassage[] {
  if (passages.length === 0) return [];
  const tfs = passages.map((p) => terms(p.text));
  const df = new Map<string, number>();
  for (const tf of tfs) for (const t of tf.keys()) df.set(t, (df.get(t) ?? 0) + 1);
  const n = passages.length;
  const vectors = tfs.map((tf) => {
    const v = new Map<string, number>();
    let norm = 0;
    for (const [t, c] of tf) {
      const w = (1 + Math.log(c)) * Math.log((n + 1) / (df.get(t)! + 0.5));
      v.set(t, w);
      norm += w * w;
    }
    norm = Math.sqrt(norm) || 1;
    for (const [t, w] of v) v.set(t, w / norm);
    return v;
  });
  const scores = vectors.map((a, i) => {
    let s = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const b = vectors[j];
      const [small, large] = a.size < b.size ? [a, b] : [b, a];
      for (const [t, w] of small) s += w * (large.get(t) ?? 0);
    }
    return n > 1 ? s / (n - 1) : 1;
  });
  return scores.map((score, i) => ({ score, i }))
    .sort((x, y) => y.score - x.score || x.i - y.i)
    .slice(0, count)
    .sort((x, y) => x.i - y.i)
    .map(({ score, i }) => ({ passageIdx: passages[i].idx, text: passages[i].text, charStart: passages[i].charStart,
      charEnd: passages[i].charEnd, score }));
}

function evenSample<T>(items: T[], count: number): T[] {
  if (items.length <= count) return items;
  return Array.from({ length: count }, (_, i) => items[Math.floor((i * items.length) / count)]);
}

async function continueText(engine: Engine, state: State, prompt: string, maxTokens: number,
                            req: { temperature: number; speculative: SpeculativeSetting; signal: AbortSignal },
                            onToken: (t: string) => void): Promise<string> {
  let text = '';
  const { temperature, speculative, signal } = req;
  const generation = engine.generate(state, { prompt, maxTokens, temperature, ...ANSWER_REPETITION,
    stop: ['\n\n', '\nSummary'], stopAtEos: true, signal }, speculative);
  for await (const piece of generation) {
    text += piece.text;
    onToken(piece.text);
  }
  await generation.result;
  return text.trim();
}

/** The cached summaries of a document for this model, or null when there are none. */
export function cachedSummary(library: Library, engine: Engine, docId: string): SummaryResult | null {
  const doc = library.getDocument(docId);
  if (!doc) return null;
  const fingerprint = engine.fingerprint;
  const whole = library.getSummary(docId, fingerprint, 'document', -1);
  if (!whole) return null;
  const labels = new Map(library.getSections(docId).map((s) => [s.idx, s.label]));
  const sections = library.listSummaries(docId, fingerprint).filter((s) => s.scope === 'section')
    .sort((a, b) => a.sectionIdx - b.sectionIdx)
    .map((s) => ({ sectionIdx: s.sectionIdx, label: labels.get(s.sectionIdx) ?? `Section ${s.sectionIdx + 1}`, text: s.text,
      keyPassages: s.keyPassages, cached: true }));
  return { requestId: 'cached', docId, document: { sectionIdx: -1, label: doc.title, text: whole.text, keyPassages: whole.keyPassages, cached: true },
    sections };
}

export async function summarize(library: Library, engine: Engine, req: SummarizeRequest): Promise<SummaryResult> {
  const doc = library.getDocument(req.docId);
  if (!doc) throw new ApiError('NOT_FOUND', `no document ${req.docId}`);
  const fingerprint = engine.fingerprint;
  const final = library.finalSnapshot(req.docId, fingerprint);
  if (!final) throw new ApiError('NOT_READY', `"${doc.title}" has not been read by this model yet (status: ${doc.status})`);
  if (req.regenerate) library.deleteSummaries(req.docId, fingerprint);

  const sectionSnapshots = new Map(library.listSnapshots(req.docId, fingerprint)
    .filter((s) => s.kind === 'section' && s.sectionIdx !== null).map((s) => [s.sectionIdx as number, s]));
  const outline = library.getSections(req.docId);
  const level = chapterLevel(outline);
  const sections = outline.filter((s) => s.level === level && (sectionSnapshots.has(s.idx) || s.tokenEnd === doc.tokenCount))
    .slice(0, req.maxSections);

  const results: SectionSummary[] = [];
  for (const section of sections) {
    if (req.signal.aborted) throw Object.assign(new Error('summary cancelled'), { name: 'AbortError' });
    const cached = library.getSummary(req.docId, fingerprint, 'section', section.idx);
    let summary: SectionSummary;
    if (cached) {
      summary = { sectionIdx: section.idx, label: section.label, text: cached.text, keyPassages: cached.keyPassages, cached: true };
    } else {
      const key = keyPassages(library.passagesInRange(req.docId, section.charStart, section.charEnd));
      const snapshot = sectionSnapshots.get(section.idx) ?? final;
      const text = await engine.lock.run(async () => {
        const state = await engine.model.loadState(snapshot.path);
        try {
          return await continueText(engine, state, `\n\nSummary of ${section.label}:`, SECTION_SUMMARY_TOKENS,
            req, (t) => req.onToken(section.idx, t));
        } finally {
          state.close();
        }
      });
      library.putSummary({ docId: req.docId, modelFingerprint: fingerprint, scope: 'section', sectionIdx: section.idx,
        text, keyPassages: key });
      summary = { sectionIdx: section.idx, label: section.label, text, keyPassages: key, cached: false };
    }
    results.push(summary);
    req.onSection(summary);
  }

  let whole: SectionSummary;
  const cachedDoc = library.getSummary(req.docId, fingerprint, 'document', -1);
  if (cachedDoc) {
    whole = { sectionIdx: -1, label: doc.title, text: cachedDoc.text, keyPassages: cachedDoc.keyPassages, cached: true };
  } else {
    // Candidates: the sections' key passages, or an even sample of the document's passages
    // (centrality is quadratic in the candidates).
    const candidates = results.length
      ? results.flatMap((s) => s.keyPassages.map((k) => ({ idx: k.passageIdx, text: k.text, charStart: k.charStart, charEnd: k.charEnd })))
      : evenSample(library.getPassages(req.docId, { fromIdx: 0, limit: 1_000_000 }), 400);
    const key = keyPassages(candidates, 5);
    const outline = results.length
      ? results.map((s) => `- ${s.label}: ${s.text}`).join('\n')
      : key.map((k) => `- ${k.text.replace(/\s+/g, ' ').slice(0, 300)}`).join('\n');
    const text = await engine.lock.run(async () => {
      const state = await engine.model.loadState(final.path);
      try {
        return await continueText(engine, state, `\n\nOutline of ${doc.title}:\n${outline}\n\nSummary of ${doc.title}:`,
          DOCUMENT_SUMMARY_TOKENS, req, (t) => req.onToken(-1, t));
      } finally {
        state.close();
      }
    });
    library.putSummary({ docId: req.docId, modelFingerprint: fingerprint, scope: 'document', sectionIdx: -1, text, keyPassages: key });
    whole = { sectionIdx: -1, label: doc.title, text, keyPassages: key, cached: false };
  }
  req.onSection(whole);
  return { requestId: req.requestId, docId: req.docId, document: whole, sections: results };
}
