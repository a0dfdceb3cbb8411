import { cleanLabel, sectionsFromHeadings, type Heading } from './sections';
import type { Section } from './types';

// Chapter and part headings in plain-text books ("CHAPTER XII.", "Part Two: The Return").
const NUMBER_WORD =
  '(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|' +
  '(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|' +
  'first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last)';
const HEADING = new RegExp(
  `^(?:(part|book|volume)|(chapter))\\s+(?:\\d{1,4}|[ivxlcdm]{1,8}|${NUMBER_WORD})(?![\\w'’])[.:]?(?:\\s.*)?$`,
  'i',
);
const MAX_HEADING_LINE = 80;
const MAX_HEADING_PARAGRAPH = 120;
/** Entries of a table of contents sit closer together than this. */
const MIN_SECTION_LENGTH = 200;
const FIRST_LETTERS = new Set(['b', 'c', 'p', 'v', 'B', 'C', 'P', 'V']);

interface Candidate extends Heading {
  part: boolean;
}

function isBlank(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0c && c !== 0x0b && c !== 0xa0) return false;
  }
  return true;
}

/** Headings that stand as a paragraph of at most two short lines, the first one matching HEADING. */
function findCandidates(text: string): Candidate[] {
  const found: Candidate[] = [];
  let previousBlank = true;
  let lineStart = 0;
  while (lineStart <= text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    const blank = isBlank(text, lineStart, lineEnd);
    if (previousBlank && !blank && lineEnd - lineStart <= MAX_HEADING_LINE) {
      const line = text.slice(lineStart, lineEnd).trim();
      const match = FIRST_LETTERS.has(line[0]) ? HEADING.exec(line) : null;
      if (match) {
        // An optional title line right below, then a blank line (or the end).
        let label = line;
        const nextStart = lineEnd + 1;
        let nextEnd = nextStart <= text.length ? text.indexOf('\n', nextStart) : -1;
        if (nextEnd === -1) nextEnd = text.length;
        let standsAlone = nextStart > text.length || isBlank(text, nextStart, nextEnd);
        if (!standsAlone && nextEnd - nextStart <= MAX_HEADING_LINE) {
          const afterStart = nextEnd + 1;
          let afterEnd = afterStart <= text.length ? text.indexOf('\n', afterStart) : -1;
          if (afterEnd === -1) afterEnd = text.length;
          if (afterStart > text.length || isBlank(text, afterStart, afterEnd)) {
            label = `${line} ${text.slice(nextStart, nextEnd).trim()}`;
            standsAlone = label.length <= MAX_HEADING_PARAGRAPH;
          }
        }
        if (standsAlone) {
          const indent = text.slice(lineStart, lineEnd).search(/\S/);
          found.push({ label: cleanLabel(label), level: 1, charStart: lineStart + indent, part: Boolean(match[1]) });
        }
      }
    }
    previousBlank = blank;
    lineStart = lineEnd + 1;
  }
  return found;
}

/** Drops the entries of a table of contents: headings packed together, or repeated later in the text. */
function dropContentsEntries(candidates: Candidate[]): Candidate[] {
  const keep: Candidate[] = [];
  const laterLabels = new Map<string, number>();
  for (const c of candidates) laterLabels.set(c.label.toLowerCase(), (laterLabels.get(c.label.toLowerCase()) ?? 0) + 1);
  // The next heading of the same or a higher level: any heading after a chapter, the next part after a part.
  const nextPart: (Candidate | undefined)[] = new Array(candidates.length);
  let following: Candidate | undefined;
  for (let i = candidates.length - 1; i >= 0; i--) {
    nextPart[i] = following;
    if (candidates[i].part) following = candidates[i];
  }
  let previous: { candidate: Candidate; dropped: boolean } | null = null;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i];
    const key = c.label.toLowerCase();
    laterLabels.set(key, laterLabels.get(key)! - 1);
    const next = c.part ? nextPart[i] : candidates[i + 1];
    const packed = next !== undefined && next.charStart - c.charStart < MIN_SECTION_LENGTH;
    const closesContents: boolean =
      previous !== null &&
      previous.dropped &&
      c.charStart - previous.candidate.charStart < MIN_SECTION_LENGTH &&
      laterLabels.get(key)! > 0;
    const dropped: boolean = packed || closesContents;
    if (!dropped) keep.push(c);
    previous = { candidate: c, dropped };
  }
  return keep;
}

/** Chapter/part sections of a plain-text book; empty unless at least two headings are found. */
export function plainTextSections(text: string): Section[] {
  const headings = dropContentsEntries(findCandidates(text));
  if (headings.length < 2) return [];
  const hasParts = headings.some((h) => h.part);
  const hasChapters = headings.some((h) => !h.part);
  for (const h of headings) h.level = hasParts && hasChapters && !h.part ? 2 : 1;
  return sectionsFromHeadings(headings, text.length, (h) => ((h as Candidate).part ? 'part' : 'chapter'));
}
