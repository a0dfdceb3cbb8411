// Test documents and helpers shared by the end-to-end tests.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { APIRequestContext, Page } from '@playwright/test';

/** A sentence found nowhere else in the book: the answer passage of the question below. */
export const UNIQUE_SENTENCE = 'The cartographer hid the brass key beneath the seventh lighthouse stair.';
export const QUESTION = 'Where did the cartographer hide the brass key?';
export const BOOK_TITLE = 'lantern-keeper';

const WORDS = ('river mountain lantern harbor whisper garden silver morning travel letter window winter candle orchard ' +
  'meadow story village ferry orchard bridge valley evening kettle market songbird').split(' ');

function words(count: number, seed: number): string {
  let x = seed;
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    out.push(WORDS[x % WORDS.length]);
  }
  const text = out.join(' ');
  return text[0].toUpperCase() + text.slice(1);
}

/** A Markdown book of five chapters; chapter 3 holds the unique sentence. */
export function writeBook(dir: string): string {
  const parts = [];
  for (let chapter = 1; chapter <= 5; chapter++) {
    parts.push(`# Chapter ${chapter}\n`);
    for (let p = 0; p < 14; p++) {
      let paragraph = `${words(70, chapter * 100 + p)}.`;
      if (chapter === 3 && p === 6) paragraph += ` ${UNIQUE_SENTENCE}`;
      parts.push(`${paragraph}\n`);
    }
  }
  const file = path.join(dir, `${BOOK_TITLE}.md`);
  fs.writeFileSync(file, parts.join('\n'));
  return file;
}

/** A long plain text (lines of words) of about `chars` characters. */
export function longText(chars: number): string {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < chars; i++) {
    const line = words(14, i + 7);
    lines.push(line);
    size += line.length + 1;
  }
  return lines.join('\n');
}

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'folio-e2e-docs-'));
}

export function screenshotDir(): string {
  const dir = process.env.FOLIO_E2E_SCREENSHOTS ?? path.resolve(__dirname, '..', 'test-results', 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(screenshotDir(), `${name}.png`) });
}

/** Calls the backend API directly (to check what the UI shows against the backend's own state). */
export async function api<T>(request: APIRequestContext, token: string, method: string, params: unknown = {}): Promise<T> {
  const res = await request.post(`/api/call/${method}`, { headers: { authorization: `Bearer ${token}` }, data: params });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${body.error.code}: ${body.error.message}`);
  return body.result as T;
}

/** Process ids of backend hosts serving `dataDir` (its path is in the host's arguments). */
export function backendHostPids(dataDir: string): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.includes('backend/host/main.js') && line.includes(dataDir))
    .map((line) => Number(line.trim().split(/\s+/, 1)[0])).filter((pid) => pid > 0);
}
