import { describe, expect, it } from 'vitest';
import {
  blockBounds, blockCount, breakAfter, fetchRange, HeightMap, intersect, nominalBlock, trimRange, visibleBlocks, type BlockLayout,
} from './virtualText';

const small: BlockLayout = { blockChars: 50, lookahead: 20 };

function sampleText(n: number, seed: number): string {
  let x = seed;
  let out = '';
  while (out.length < n) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const r = x % 100;
    out += r < 8 ? '\n' : r < 25 ? ' ' : String.fromCharCode(97 + (r % 26));
  }
  return out.slice(0, n);
}

function blocksOf(text: string, layout: BlockLayout): string[] {
  const count = blockCount(text.length, layout);
  return Array.from({ length: count }, (_, k) => {
    const r = fetchRange(k, text.length, layout);
    const { start, end } = blockBounds(k, text.slice(r.start, r.end), text.length, layout);
    return text.slice(start, end);
  });
}

describe('block boundaries', () => {
  it('cut the text into blocks that join up exactly', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      for (const length of [0, 1, 49, 50, 51, 333, 1000]) {
        const text = sampleText(length, seed);
        expect(blocksOf(text, small).join('')).toBe(text);
      }
    }
  });

  it('end blocks just after a line break when there is one in the lookahead', () => {
    const text = `${'a'.repeat(55)}\n${'b'.repeat(100)}`;
    const [first, second] = blocksOf(text, small);
    expect(first).toBe(`${'a'.repeat(55)}\n`);
    expect(second.startsWith('b')).toBe(true);
  });

  it('fall back to a space, then to the nominal end, when there is no line break', () => {
    expect(breakAfter('abc def\nx', 0, 5)).toBe(4);
    expect(breakAfter('abcdefgh', 2, 6)).toBe(2);
    const text = 'x'.repeat(200);
    expect(blocksOf(text, small).map((b) => b.length)).toEqual([50, 50, 50, 50]);
  });

  it('finds the block of a character', () => {
    expect(nominalBlock(0, 1000, small)).toBe(0);
    expect(nominalBlock(120, 1000, small)).toBe(2);
    expect(nominalBlock(5000, 1000, small)).toBe(19);
  });

  it('counts blocks for a million-token book without materializing it', () => {
    expect(blockCount(4_000_000)).toBe(667);
  });
});

describe('HeightMap', () => {
  it('places blocks by estimated then measured heights', () => {
    const map = new HeightMap(5, 100);
    expect(map.total()).toBe(500);
    expect(map.top(3)).toBe(300);
    expect(map.set(1, 40)).toBe(true);
    expect(map.set(1, 40)).toBe(false);
    expect(map.top(3)).toBe(240);
    expect(map.total()).toBe(440);
    expect(map.indexAt(0)).toBe(0);
    expect(map.indexAt(139)).toBe(1);
    expect(map.indexAt(140)).toBe(2);
    expect(map.indexAt(10_000)).toBe(4);
    map.reset(10);
    expect(map.total()).toBe(50);
    expect(map.isMeasured(1)).toBe(false);
  });

  it('gives the blocks in view with overscan', () => {
    const map = new HeightMap(1000, 100);
    expect(visibleBlocks(map, 5000, 400, 150)).toEqual({ first: 48, last: 55 });
    expect(visibleBlocks(map, 0, 400, 0)).toEqual({ first: 0, last: 4 });
  });
});

describe('highlight ranges', () => {
  it('intersect a passage with a block', () => {
    expect(intersect(10, 20, 0, 50)).toEqual({ from: 10, to: 20 });
    expect(intersect(40, 70, 50, 100)).toEqual({ from: 0, to: 20 });
    expect(intersect(40, 50, 50, 100)).toBeNull();
    expect(intersect(60, 60, 50, 100)).toEqual({ from: 10, to: 10 });
    expect(intersect(100, 100, 50, 100)).toBeNull();
  });

  it('trim the blank lines around a passage', () => {
    expect(trimRange('ab  cd\n\n', 0, 8)).toEqual({ from: 0, to: 6 });
    expect(trimRange('\n\nxy', 0, 4)).toEqual({ from: 2, to: 4 });
    expect(trimRange('   ', 0, 3)).toEqual({ from: 0, to: 0 });
  });
});
