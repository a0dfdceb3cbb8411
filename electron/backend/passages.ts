// Cuts a document's text into passages of about `targetTokens` tokens on line and sentence
// boundaries, never across a section boundary. Each passage is tokenized on its own and the
// model reads the concatenation of the passages' tokens, so every passage's token range is
// exact by construction (and its character range is exact too).

export interface SectionRange {
  charStart: number;
  charEnd: number;
}

export interface CutPassage {
  idx: number;
  sectionIdx: number | null;
  charStart: number;
  charEnd: number;
  tokens: Int32Array;
}

const MAX_UNIT_CHARS = 2000;       // longer lines are split at spaces (or anywhere)
const SENTENCE_END = /[.!?]["')\]]?\s+/g;

/**
 * Ranges [start, end) tiling [0, length), each owned by the innermost section that covers it
 * (the one starting last; the deeper one when two start together), or null outside sections.
 * Sections nest (a book title covers its chapters), so a passage belongs to its chapter.
 */
export function regions(length: number, sections: readonly (SectionRange & { level?: number })[]):
  { start: number; end: number; section: number | null }[] {
  const clamp = (x: number) => Math.max(0, Math.min(length, x));
  // Sweep the boundaries with a stack of open sections: outer ones are pushed before the inner
  // ones that start at the same place, so the top is always the innermost open section.
  const order = sections.map((_, i) => i).filter((i) => clamp(sections[i].charEnd) > clamp(sections[i].charStart))
    .sort((a, b) => clamp(sections[a].charStart) - clamp(sections[b].charStart)
      || (sections[a].level ?? 1) - (sections[b].level ?? 1) || b - a);
  const cuts = new Set<number>([0, length]);
  for (const i of order) {
    cuts.add(clamp(sections[i].charStart));
    cuts.add(clamp(sections[i].charEnd));
  }
  const points = [...cuts].sort((a, b) => a - b);
  const open: number[] = [];
  let next = 0;
  const out: { start: number; end: number; section: number | null }[] = [];
  for (let p = 0; p + 1 < points.length; p++) {
    const a = points[p];
    while (next < order.length && clamp(sections[order[next]].charStart) <= a) open.push(order[next++]);
    while (open.length && clamp(sections[open[open.length - 1]].charEnd) <= a) open.pop();
    const owner = open.length ? open[open.length - 1] : null;
    const last = out[out.length - 1];
    if (last && last.section === owner) last.end = points[p + 1];
    else out.push({ start: a, end: points[p + 1], section: owner });
  }
  return out;
}

/** End offsets of the units (lines, sentences, or slices of very long lines) of text[start, end). */
function* unitEnds(text: string, start: number, end: number): Generator<number> {
  let pos = start;
  while (pos < end) {
    const newline = text.indexOf('\n', pos);
    const lineEnd = newline < 0 || newline >= end ? end : newline + 1;
    if (lineEnd - pos <= MAX_UNIT_CHARS) {
      yield lineEnd;
      pos = lineEnd;
      continue;
    }
    // A long line: sentence ends, then spaces, then a hard cut.
    while (pos < lineEnd) {
      const limit = Math.min(lineEnd, pos + MAX_UNIT_CHARS);
      if (limit === lineEnd) {
        yield lineEnd;
        pos = lineEnd;
        break;
      }
      const window = text.slice(pos, limit);
      let cut = -1;
      SENTENCE_END.lastIndex = 0;
      for (let m = SENTENCE_END.exec(window); m; m = SENTENCE_END.exec(window)) cut = m.index + m[0].length;
      if (cut <= 0) cut = window.lastIndexOf(' ') + 1;
      if (cut <= 0) cut = window.length;
      // Never split a surrogate pair.
      const code = text.charCodeAt(pos + cut - 1);
      if (code >= 0xd800 && code <= 0xdbff && cut < window.length) cut++;
      yield pos + cut;
      pos += cut;
    }
  }
}

/**
 * Yields passages in order. `tokenize` is called once per passage; characters per token are
 * learned as it goes, so passages land near the target without tokenizing twice.
 */
export function* cutPassages(text: string, sections: readonly (SectionRange & { level?: number })[], tokenize: (s: string) => Int32Array,
                             targetTokens = 300): Generator<CutPassage> {
  let charsPerToken = 3.5;
  let idx = 0;
  for (const region of regions(text.length, sections)) {
    let start = region.start;
    let last = start;
    const flush = (end: number): CutPassage | null => {
      if (end <= start) return null;
      const piece = text.slice(start, end);
      const tokens = tokenize(piece);
      if (tokens.length > 0) charsPerToken = 0.8 * charsPerToken + 0.2 * (piece.length / tokens.length);
      const passage = { idx: idx++, sectionIdx: region.section, charStart: start, charEnd: end, tokens };
      start = end;
      return passage;
    };
    for (const end of unitEnds(text, region.start, region.end)) {
      const estimate = (end - start) / charsPerToken;
      if (estimate > targetTokens * 1.25 && last > start) {
        const p = flush(last);        // the units so far make a passage; this unit starts the next
        if (p) yield p;
      }
      last = end;
      if ((end - start) / charsPerToken >= targetTokens) {
        const p = flush(end);
        if (p) yield p;
      }
    }
    const p = flush(region.end);
    if (p) yield p;
  }
}
