import { describe, expect, it, vi } from 'vitest';
import { DocumentText } from './textCache';

const layout = { blockChars: 10, lookahead: 4 };
const text = Array.from({ length: 100 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');

function source() {
  return vi.fn(async (start: number, end: number) => text.slice(start, end));
}

describe('DocumentText', () => {
  it('fetches a run of missing blocks with one request and slices it per block', async () => {
    const fetchText = source();
    const doc = new DocumentText(text.length, fetchText, layout);
    doc.ensure(2, 4);
    await vi.waitFor(() => expect(doc.get(4)).toBeDefined());
    expect(fetchText).toHaveBeenCalledTimes(1);
    expect(fetchText).toHaveBeenCalledWith(20, 54);
    expect(doc.get(2)).toBe(text.slice(20, 34));
    expect(doc.get(4)).toBe(text.slice(40, 54));
  });

  it('does not fetch loaded or pending blocks again', async () => {
    const fetchText = source();
    const doc = new DocumentText(text.length, fetchText, layout);
    doc.ensure(0, 1);
    doc.ensure(0, 1);
    await vi.waitFor(() => expect(doc.get(1)).toBeDefined());
    doc.ensure(0, 3);
    await vi.waitFor(() => expect(doc.get(3)).toBeDefined());
    expect(fetchText.mock.calls).toEqual([[0, 24], [20, 44]]);
  });

  it('notifies subscribers and keeps the last block short', async () => {
    const doc = new DocumentText(text.length, source(), layout);
    const listener = vi.fn();
    doc.subscribe(listener);
    doc.ensure(9, 9);
    await vi.waitFor(() => expect(listener).toHaveBeenCalled());
    expect(doc.get(9)).toBe(text.slice(90, 100));
    expect(doc.snapshot()).toBeGreaterThan(0);
  });

  it('records failures and tries again on retry', async () => {
    let fail = true;
    const doc = new DocumentText(text.length, async (a, b) => {
      if (fail) throw new Error('not ready');
      return text.slice(a, b);
    }, layout);
    doc.ensure(0, 0, (e) => (e as Error).message);
    await vi.waitFor(() => expect(doc.failure(0)).toBe('not ready'));
    doc.ensure(0, 0);
    expect(doc.get(0)).toBeUndefined();
    fail = false;
    doc.retry();
    doc.ensure(0, 0);
    await vi.waitFor(() => expect(doc.get(0)).toBe(text.slice(0, 14)));
  });

  it('evicts blocks far from the view beyond its budget', async () => {
    const doc = new DocumentText(text.length, source(), layout, 3);
    doc.ensure(0, 2);
    await vi.waitFor(() => expect(doc.get(2)).toBeDefined());
    doc.ensure(7, 9);
    await vi.waitFor(() => expect(doc.get(9)).toBeDefined());
    doc.ensure(7, 9);
    expect(doc.get(0)).toBeUndefined();
    expect(doc.get(8)).toBeDefined();
  });
});
