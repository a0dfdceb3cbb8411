// The reader's window math. A document's text is cut into blocks of about BLOCK_CHARS
// characters; each block ends just after a line break (or a space) found in the LOOKAHEAD
// characters after its nominal end, so blocks never split a line. A block is fetched together
// with its lookahead, which lets it find both of its own ends without its neighbours.
// Heights are estimated until a block has been measured; positions are prefix sums.

export const BLOCK_CHARS = 6000;
export const LOOKAHEAD = 1500;

export interface BlockLayout {
  blockChars: number;
  lookahead: number;
}

export const DEFAULT_LAYOUT: BlockLayout = { blockChars: BLOCK_CHARS, lookahead: LOOKAHEAD };

export function blockCount(charCount: number, layout = DEFAULT_LAYOUT): number {
  return Math.max(1, Math.ceil(charCount / layout.blockChars));
}

/** The characters to fetch for block k: its nominal range plus the lookahead. */
export function fetchRange(k: number, charCount: number, layout = DEFAULT_LAYOUT): { start: number; end: number } {
  const start = Math.min(charCount, k * layout.blockChars);
  return { start, end: Math.min(charCount, (k + 1) * layout.blockChars + layout.lookahead) };
}

/** Offset just past the first line break in text[from, to), else past the first space, else `from`. */
export function breakAfter(text: string, from: number, to: number): number {
  const end = Math.min(to, text.length);
  const newline = text.indexOf('\n', from);
  if (newline >= 0 && newline < end) return newline + 1;
  for (let i = from; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9) return i + 1;
  }
  return Math.min(from, text.length);
}

/**
 * Where block k starts and ends (absolute character offsets), given the text fetched for it
 * (`fetched` starts at k * blockChars). Consecutive blocks meet exactly: block k's end and
 * block k+1's start are found by the same rule in the same characters.
 */
export function blockBounds(k: number, fetched: string, charCount: number, layout = DEFAULT_LAYOUT): { start: number; end: number } {
  const base = k * layout.blockChars;
  const start = k === 0 ? 0 : base + breakAfter(fetched, 0, layout.lookahead);
  const nominalEnd = (k + 1) * layout.blockChars;
  const end = nominalEnd >= charCount ? charCount : base + breakAfter(fetched, layout.blockChars, layout.blockChars + layout.lookahead);
  return { start, end: Math.max(start, end) };
}

/** The block whose nominal range holds `pos` (the displayed block may be this one or the one before). */
export function nominalBlock(pos: number, charCount: number, layout = DEFAULT_LAYOUT): number {
  const last = blockCount(charCount, layout) - 1;
  return Math.max(0, Math.min(last, Math.floor(pos / layout.blockChars)));
}

/** Estimated rendered height of a block of `chars` characters in a column of `charsPerLine`. */
export function estimateBlockHeight(chars: number, charsPerLine: number, lineHeight: number): number {
  // Prose wraps at about 80% of the column (word breaks) and paragraphs add short lines.
  const lines = Math.ceil(chars / Math.max(10, charsPerLine * 0.8)) * 1.08;
  return Math.max(lineHeight, Math.round(lines * lineHeight));
}

/** Heights of n blocks: measured ones as measured, the others estimated; positions by prefix sums. */
export class HeightMap {
  private readonly measured: Float64Array;
  private offsets: Float64Array;
  private dirty = true;

  constructor(readonly count: number, private estimate: number) {
    this.measured = new Float64Array(count).fill(Number.NaN);
    this.offsets = new Float64Array(count + 1);
  }

  height(k: number): number {
    const h = this.measured[k];
    return Number.isNaN(h) ? this.estimate : h;
  }

  isMeasured(k: number): boolean {
    return !Number.isNaN(this.measured[k]);
  }

  /** Records a measured height; returns whether anything changed. */
  set(k: number, height: number): boolean {
    if (k < 0 || k >= this.count || Math.abs(this.height(k) - height) < 0.5 && this.isMeasured(k)) return false;
    this.measured[k] = height;
    this.dirty = true;
    return true;
  }

  /** Forgets every measurement (the column width changed) and uses a new estimate. */
  reset(estimate: number): void {
    this.measured.fill(Number.NaN);
    this.estimate = estimate;
    this.dirty = true;
  }

  private update(): void {
    if (!this.dirty) return;
    let y = 0;
    for (let k = 0; k < this.count; k++) {
      this.offsets[k] = y;
      y += this.height(k);
    }
    this.offsets[this.count] = y;
    this.dirty = false;
  }

  top(k: number): number {
    this.update();
    return this.offsets[Math.max(0, Math.min(this.count, k))];
  }

  total(): number {
    return this.top(this.count);
  }

  /** The block at vertical position y (clamped to the first and last). */
  indexAt(y: number): number {
    this.update();
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.offsets[mid] <= y) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

/** The blocks to render for a viewport, with `overscan` pixels above and below. */
export function visibleBlocks(map: HeightMap, scrollTop: number, viewportHeight: number, overscan: number): { first: number; last: number } {
  const first = map.indexAt(Math.max(0, scrollTop - overscan));
  const last = map.indexAt(scrollTop + viewportHeight + overscan);
  return { first, last };
}

/**
 * The part of [start, end) inside the block [blockStart, blockEnd), relative to the block, or
 * null. An empty range (a jump target without a highlight) belongs to the block holding start.
 */
export function intersect(start: number, end: number, blockStart: number, blockEnd: number): { from: number; to: number } | null {
  if (start === end) {
    return start >= blockStart && start < blockEnd ? { from: start - blockStart, to: start - blockStart } : null;
  }
  const from = Math.max(start, blockStart);
  const to = Math.min(end, blockEnd);
  return from < to ? { from: from - blockStart, to: to - blockStart } : null;
}

/** [from, to) of `text` without the whitespace at either end (a passage's trailing blank lines);
 *  empty (from === to) when there is nothing but whitespace. */
export function trimRange(text: string, from: number, to: number): { from: number; to: number } {
  let a = from;
  let b = to;
  while (b > a && /\s/.test(text[b - 1])) b--;
  while (a < b && /\s/.test(text[a])) a++;
  return b > a ? { from: a, to: b } : { from, to: from };
}
