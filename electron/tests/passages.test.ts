import { describe, expect, it } from 'vitest';
import { cutPassages, regions } from '../backend/passages';

describe('regions', () => {
  it('gives each span to the innermost section covering it, and gaps to none', () => {
    // A book (0-100) with chapters 10-50 and 50-90, a sub-heading 20-30, and text after the book.
    const sections = [
      { charStart: 0, charEnd: 100, level: 1 },
      { charStart: 10, charEnd: 50, level: 2 },
      { charStart: 20, charEnd: 30, level: 3 },
      { charStart: 50, charEnd: 90, level: 2 },
    ];
    expect(regions(120, sections)).toEqual([
      { start: 0, end: 10, section: 0 },
      { start: 10, end: 20, section: 1 },
      { start: 20, end: 30, section: 2 },
      { start: 30, end: 50, section: 1 },
      { start: 50, end: 90, section: 3 },
      { start: 90, end: 100, section: 0 },
      { start: 100, end: 120, section: null },
    ]);
  });

  it('prefers the deeper of two sections starting together, and skips empty ones', () => {
    const sections = [
      { charStart: 0, charEnd: 40, level: 1 },
      { charStart: 0, charEnd: 20, level: 2 },
      { charStart: 25, charEnd: 25, level: 2 },
    ];
    expect(regions(40, sections)).toEqual([
      { start: 0, end: 20, section: 1 },
      { start: 20, end: 40, section: 0 },
    ]);
  });

  it('handles tens of thousands of sections (a large source folder)', () => {
    const sections = Array.from({ length: 50_000 }, (_, i) => ({ charStart: i * 10, charEnd: i * 10 + 10, level: 1 }));
    const out = regions(500_000, sections);
    expect(out.length).toBe(50_000);
    expect(out[12_345]).toEqual({ start: 123_450, end: 123_460, section: 12_345 });
  });
});

describe('cutPassages', () => {
  it('tiles the text without crossing a section boundary', () => {
    const lines = (w: string) => `${w} `.repeat(10).trimEnd().concat('\n').repeat(40);
    const text = lines('word') + lines('term');
    const split = text.indexOf('term');
    const tokenize = (s: string) => Int32Array.from(s.split(' ').filter(Boolean).map(() => 1));
    const passages = [...cutPassages(text, [{ charStart: 0, charEnd: split }, { charStart: split, charEnd: text.length }], tokenize, 100)];
    expect(passages.map((p) => text.slice(p.charStart, p.charEnd)).join('')).toBe(text);
    for (const p of passages) expect(p.charEnd <= split || p.charStart >= split).toBe(true);
    // Near the target: at most a quarter over, plus the line that crossed it.
    expect(passages.every((p) => p.tokens.length <= 100 * 1.25 + 10)).toBe(true);
    expect(passages.length).toBeGreaterThanOrEqual(6);
  });
});
