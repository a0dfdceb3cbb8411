import type { Section } from './types';

export interface Heading {
  label: string;
  level: number;
  charStart: number;
}

const MAX_LABEL_LENGTH = 200;

/** Collapses whitespace and caps the length of a heading or title. */
export function cleanLabel(raw: string): string {
  const label = (raw.length > 4 * MAX_LABEL_LENGTH ? raw.slice(0, 4 * MAX_LABEL_LENGTH) : raw).replace(/\s+/g, ' ').trim();
  return label.length > MAX_LABEL_LENGTH ? label.slice(0, MAX_LABEL_LENGTH - 1).trimEnd() + '…' : label;
}

/**
 * Each heading's section runs to the next heading of the same or a higher
 * level (smaller number), or to `textEnd`. Headings must be ordered by charStart.
 */
export function sectionsFromHeadings(
  headings: readonly Heading[],
  textEnd: number,
  kindOf: (heading: Heading) => Section['kind'],
): Section[] {
  const sections: Section[] = headings.map((h) => ({
    label: h.label,
    kind: kindOf(h),
    level: h.level,
    charStart: h.charStart,
    charEnd: textEnd,
  }));
  const open: number[] = [];
  sections.forEach((section, i) => {
    while (open.length > 0 && sections[open[open.length - 1]].level >= section.level) {
      sections[open.pop()!].charEnd = section.charStart;
    }
    open.push(i);
  });
  return sections;
}
