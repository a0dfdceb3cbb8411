import { act, render, screen, waitFor } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';
import { installFakeClient, type FakeClient } from '../test/fakeClient';
import { BLOCK_CHARS } from '../lib/virtualText';
import { VirtualText } from './VirtualText';

// A 4M-character book (about a million tokens), generated on demand: only requested ranges exist.
const CHARS = 4_000_000;
const SENTENCE = 'The cartographer hid the brass key beneath the seventh lighthouse stair.';
const TARGET = 2_500_123;
function charAt(i: number): string {
  if (i >= TARGET && i < TARGET + SENTENCE.length) return SENTENCE[i - TARGET];
  return i % 80 === 79 ? '\n' : String.fromCharCode(97 + ((i * 7) % 26));
}
const slice = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => charAt(a + i)).join('');

let fake: FakeClient;
let requested: [number, number][];
beforeEach(() => {
  fake = installFakeClient();
  requested = [];
  fake.handle('documents.text', ({ charStart, charEnd }) => {
    requested.push([charStart, charEnd]);
    return { text: slice(charStart, charEnd) };
  });
});

const props = { docId: 'doc1', title: 'Big Book', charCount: CHARS, monospace: false, initialPos: 0, onPosition: () => undefined };

describe('VirtualText', () => {
  it('opens a million-token book by fetching and rendering only the first blocks', async () => {
    const { container } = render(<VirtualText {...props} target={null} />);
    await waitFor(() => expect(container.querySelectorAll('[data-loaded]').length).toBeGreaterThan(0));
    const rendered = container.querySelectorAll('[data-block]').length;
    expect(rendered).toBeLessThan(12);
    const fetchedChars = requested.reduce((n, [a, b]) => n + b - a, 0);
    expect(fetchedChars).toBeLessThan(15 * BLOCK_CHARS);
    expect(requested[0][0]).toBe(0);
    // The scroll space stands for the whole text.
    const space = container.querySelector<HTMLElement>('.reader-space')!;
    expect(parseFloat(space.style.height)).toBeGreaterThan(100_000);
  });

  it('jumps to a passage deep in the book and highlights exactly it', async () => {
    const target = { docId: 'doc1', charStart: TARGET, charEnd: TARGET + SENTENCE.length, highlight: true, seq: 1 };
    const { container } = render(<VirtualText {...props} target={target} />);
    const mark = await screen.findByText(SENTENCE, { selector: 'mark' });
    expect(mark.closest('[data-block]')!.getAttribute('data-block')).toBe(String(Math.floor(TARGET / BLOCK_CHARS)));
    expect(requested.every(([a]) => a >= (Math.floor(TARGET / BLOCK_CHARS) - 1) * BLOCK_CHARS)).toBe(true);
    expect(container.querySelectorAll('mark').length).toBe(1);
  });

  it('moves to a new target when the reader is asked again', async () => {
    const first = { docId: 'doc1', charStart: 100, charEnd: 110, highlight: true, seq: 1 };
    const { rerender } = render(<VirtualText {...props} target={first} />);
    await screen.findByText(slice(100, 110), { selector: 'mark' });
    const second = { docId: 'doc1', charStart: TARGET, charEnd: TARGET + SENTENCE.length, highlight: true, seq: 2 };
    act(() => rerender(<VirtualText {...props} target={second} />));
    expect(await screen.findByText(SENTENCE, { selector: 'mark' })).toBeTruthy();
  });

  it('shows a readable message when the text cannot be loaded', async () => {
    fake.handle('documents.text', () => { throw new Error('the document has not been read yet'); });
    render(<VirtualText {...props} charCount={5000} target={null} />);
    expect(await screen.findByText(/could not be loaded: The document has not been read yet/)).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Try again' })).toBeTruthy();
  });
});
