// The stored texts of documents, decoded once and kept for the last few documents used: the
// reader asks for many small ranges of the same text, and offsets are UTF-16 positions, so a
// range cannot be read from the UTF-8 file without decoding what comes before it.
import fs from 'node:fs';
import { dataPaths } from './library';

const KEEP = 2;

export class StoredTexts {
  private readonly cache = new Map<string, { mtimeMs: number; size: number; text: string }>();

  constructor(private readonly dataDir: string) {}

  /** The document's text; throws ENOENT when it has not been stored yet. */
  get(docId: string): string {
    const file = dataPaths(this.dataDir).textPath(docId);
    const stat = fs.statSync(file);
    const hit = this.cache.get(docId);
    if (hit && hit.mtimeMs === stat.mtimeMs && hit.size === stat.size) {
      this.cache.delete(docId);       // most recently used last
      this.cache.set(docId, hit);
      return hit.text;
    }
    const text = fs.readFileSync(file, 'utf8');
    this.cache.delete(docId);
    this.cache.set(docId, { mtimeMs: stat.mtimeMs, size: stat.size, text });
    while (this.cache.size > KEEP) this.cache.delete(this.cache.keys().next().value as string);
    return text;
  }

  forget(docId: string): void {
    this.cache.delete(docId);
  }
}
