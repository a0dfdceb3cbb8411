import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readDocument } from '../backend/readers';

// Runs in its own test file (and so its own worker), so that the peak RSS it
// measures belongs to this read alone.

const SIZE = 200 * 1024 * 1024;
let dir: string;
let path: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'folio-readers-large-'));
  path = join(dir, 'one-line.log');
  const chunk = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = 0x61 + (i % 26);
  const fd = openSync(path, 'w');
  for (let written = 0; written < SIZE; written += chunk.length) writeSync(fd, chunk);
  closeSync(fd);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

it('reads a 200 MB single-line file within a small multiple of its size', async () => {
  const rssBefore = process.memoryUsage().rss;
  const started = Date.now();
  const result = await readDocument(path);
  const elapsed = Date.now() - started;
  const peakGrowth = process.resourceUsage().maxRSS * 1024 - rssBefore;

  expect(result.format).toBe('text');
  expect(result.text.length).toBe(SIZE);
  expect(result.text.startsWith('abcdefghijklmnopqrstuvwxyzab')).toBe(true);
  expect(result.sections).toEqual([]);
  expect(result.sourceBytes).toBe(SIZE);
  expect(peakGrowth).toBeLessThan(3 * SIZE);
  expect(elapsed).toBeLessThan(20_000);
  console.log(`200 MB line: ${elapsed} ms, peak RSS growth ${(peakGrowth / 2 ** 20).toFixed(0)} MiB`);
}, 60_000);
