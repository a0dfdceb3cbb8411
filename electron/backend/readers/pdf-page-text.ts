// Rebuilds lines and paragraphs of a PDF page from its positioned text items.

/** The parts of a pdf.js TextItem this module uses. */
export interface PositionedText {
  str: string;
  /** [a, b, c, d, x, y] text matrix in page space (y grows upwards). */
  transform: number[];
  width: number;
  height: number;
  hasEOL: boolean;
}

/** Where a line starts in the page text, and where it sits on the page. */
export interface LinePosition {
  offset: number;
  x: number;
  /** Baseline. */
  y: number;
}

export interface PageText {
  text: string;
  lines: LinePosition[];
}

/** Same line if the baselines differ by less than this share of the font size. */
const SAME_LINE = 0.5;
/** A horizontal gap wider than this share of the font size separates words. */
const WORD_GAP = 0.15;
/** A vertical step larger than this many line heights starts a paragraph. */
const PARAGRAPH_GAP = 1.6;

export function pageText(items: readonly PositionedText[]): PageText {
  const lines: string[] = [];
  const positions: LinePosition[] = [];
  let offset = 0;
  let line = '';
  let lineX = 0;
  let lineY = 0;
  let lastY = 0;
  let lastEnd = 0;
  let lastSize = 0;
  let breakPending = false;

  const finishLine = (): void => {
    const trimmed = line.trimEnd();
    if (trimmed.length > 0) {
      if (lines.length > 0) offset += 1;
      positions.push({ offset, x: lineX, y: lineY });
      lines.push(trimmed);
      offset += trimmed.length;
    }
    line = '';
  };

  for (const item of items) {
    const [, , c, d, x, y] = item.transform;
    const size = Math.hypot(c, d) || item.height || lastSize || 1;
    if (item.str.length === 0) {
      if (item.hasEOL) breakPending = true;
      continue;
    }
    if (line.length > 0) {
      const lineHeight = Math.max(size, lastSize);
      const newLine = breakPending || Math.abs(y - lastY) > SAME_LINE * lineHeight;
      if (newLine) {
        const step = lastY - y;
        finishLine();
        if (step > PARAGRAPH_GAP * lineHeight && lines.length > 0 && lines[lines.length - 1] !== '') {
          lines.push('');
          offset += 1;
        }
      } else if (x - lastEnd > WORD_GAP * size && !/\s$/.test(line) && !/^\s/.test(item.str)) {
        line += ' ';
      }
    }
    if (line.length === 0) {
      const str = item.str.trimStart();
      if (str.length === 0) {
        breakPending = item.hasEOL;
        continue;
      }
      lineX = x;
      lineY = y;
      line = str;
    } else {
      line += item.str;
    }
    lastY = y;
    lastEnd = x + item.width;
    lastSize = size;
    breakPending = item.hasEOL;
  }
  finishLine();
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return { text: lines.join('\n'), lines: positions };
}

/**
 * Offset of the line a destination (x = left, y = top, page space) points at:
 * the closest line whose baseline lies at or below `top`, right of `left`.
 */
export function offsetAtPosition(lines: readonly LinePosition[], left: number | null, top: number | null): number {
  if (top === null || lines.length === 0) return 0;
  let best: LinePosition | null = null;
  for (const line of lines) {
    if (line.y > top + 2) continue;
    if (left !== null && line.x < left - 2) continue;
    if (best === null || line.y > best.y) best = line;
  }
  return best?.offset ?? 0;
}
