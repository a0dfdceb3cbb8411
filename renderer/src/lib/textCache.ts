// The reader's text, fetched by block (with documents.text ranges) as blocks come into view,
// and kept for a while: scrolling back does not fetch again. Contiguous missing blocks are
// fetched with one request.
import { DEFAULT_LAYOUT, fetchRange, type BlockLayout } from './virtualText';

export type FetchText = (charStart: number, charEnd: number) => Promise<string>;

const MAX_BLOCKS_PER_REQUEST = 16;

export class DocumentText {
  private readonly blocks = new Map<number, string>();
  private readonly failures = new Map<number, string>();
  private readonly inflight = new Set<number>();
  private readonly listeners = new Set<() => void>();
  private version = 0;

  constructor(readonly charCount: number, private readonly fetchText: FetchText,
              readonly layout: BlockLayout = DEFAULT_LAYOUT, private readonly maxBlocks = 300) {}

  /** The fetched text of block k (starting at k * blockChars, lookahead included), if loaded. */
  get(k: number): string | undefined {
    return this.blocks.get(k);
  }

  failure(k: number): string | undefined {
    return this.failures.get(k);
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  snapshot = (): number => this.version;

  private changed(): void {
    this.version++;
    for (const listener of this.listeners) listener();
  }

  /** Starts fetching the blocks of [first, last] that are neither loaded nor on their way. */
  ensure(first: number, last: number, describe: (error: unknown) => string = String): void {
    const runs: [number, number][] = [];
    let k = first;
    while (k <= last) {
      if (!this.missing(k)) {
        k++;
        continue;
      }
      const a = k;
      while (k <= last && this.missing(k) && k - a < MAX_BLOCKS_PER_REQUEST) k++;
      runs.push([a, k - 1]);
    }
    for (const [a, b] of runs) void this.fetchRun(a, b, describe);
    this.evict(first, last);
  }

  private missing(k: number): boolean {
    return !this.blocks.has(k) && !this.inflight.has(k) && !this.failures.has(k);
  }

  /** Forgets failed blocks so the next `ensure` tries them again. */
  retry(): void {
    if (!this.failures.size) return;
    this.failures.clear();
    this.changed();
  }

  private async fetchRun(a: number, b: number, describe: (error: unknown) => string): Promise<void> {
    const start = fetchRange(a, this.charCount, this.layout).start;
    const end = fetchRange(b, this.charCount, this.layout).end;
    for (let k = a; k <= b; k++) this.inflight.add(k);
    try {
      const text = await this.fetchText(start, end);
      for (let k = a; k <= b; k++) {
        const r = fetchRange(k, this.charCount, this.layout);
        this.blocks.set(k, text.slice(r.start - start, r.end - start));
      }
    } catch (error) {
      for (let k = a; k <= b; k++) this.failures.set(k, describe(error));
    } finally {
      for (let k = a; k <= b; k++) this.inflight.delete(k);
      this.changed();
    }
  }

  /** Drops the blocks loaded longest ago, keeping those in view. */
  private evict(first: number, last: number): void {
    if (this.blocks.size <= this.maxBlocks) return;
    for (const k of this.blocks.keys()) {
      if (this.blocks.size <= this.maxBlocks) break;
      if (k < first || k > last) this.blocks.delete(k);
    }
  }
}
