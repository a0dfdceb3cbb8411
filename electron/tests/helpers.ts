import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultModelPath } from '../backend/engine/engine';

/** The model the backend tests run: FOLIO_TEST_MODEL, else the shipped default model. */
export function testModelPath(): string {
  const file = process.env.FOLIO_TEST_MODEL || defaultModelPath();
  if (!fs.existsSync(file)) throw new Error(`test model not found: ${file} (set FOLIO_TEST_MODEL)`);
  return file;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `folio-${prefix}-`));
}

const WORDS = ('river stone lantern harbor meadow quiet morning letter garden winter journey window candle ' +
  'mountain village market bridge orchard silver thunder forest kitchen painter sailor doctor teacher').split(' ');

/** Deterministic prose: `paragraphs` paragraphs of plain sentences. */
export function prose(paragraphs: number, seed = 1): string {
  let x = seed;
  const next = () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x;
  };
  const out: string[] = [];
  for (let p = 0; p < paragraphs; p++) {
    const sentences: string[] = [];
    for (let s = 0; s < 5; s++) {
      const words = Array.from({ length: 8 + (next() % 8) }, () => WORDS[next() % WORDS.length]);
      words[0] = words[0][0].toUpperCase() + words[0].slice(1);
      sentences.push(`${words.join(' ')}.`);
    }
    out.push(sentences.join(' '));
  }
  return out.join('\n\n');
}

/** A Markdown book with chapters, one of which holds `needle`. */
export function book(chapters: number, paragraphsPerChapter: number, needle: { chapter: number; text: string }): string {
  const parts: string[] = ['# The Harbor Book\n'];
  for (let c = 1; c <= chapters; c++) {
    parts.push(`\n## Chapter ${c}\n\n${prose(paragraphsPerChapter, c)}\n`);
    if (c === needle.chapter) parts.push(`\n${needle.text}\n\n${prose(2, 100 + c)}\n`);
  }
  return parts.join('');
}
