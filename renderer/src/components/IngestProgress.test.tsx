import { fireEvent, render, screen, within } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';
import { installFakeClient, makeDoc, type FakeClient } from '../test/fakeClient';
import { useProgress } from '../stores/progress';
import { IngestProgress } from './IngestProgress';

let fake: FakeClient;
beforeEach(() => {
  fake = installFakeClient();
  useProgress.setState({ live: {} });
});

describe('IngestProgress', () => {
  it('shows phase, a real bar, speed and time left, and cancels', () => {
    const doc = makeDoc({ status: 'ingesting', tokenCount: 200_000, tokensIngested: 0 });
    useProgress.getState().apply({ docId: 'doc1', phase: 'ingesting', done: 50_000, total: 200_000, tokensPerSecond: 1500, etaSeconds: 100 });
    fake.handle('documents.cancel', () => ({ cancelled: true }));
    render(<IngestProgress doc={doc} />);
    const region = screen.getByRole('region', { name: 'Reading progress of The Book' });
    expect(within(region).getByRole('heading').textContent).toBe('Reading with the model');
    expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('25');
    expect(screen.getByText('25%')).toBeTruthy();
    expect(screen.getByText('50k of 200k tokens')).toBeTruthy();
    expect(screen.getByText('1.5k tokens/s')).toBeTruthy();
    expect(screen.getByText('1 min 40 s')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Cancel reading' }));
    expect(fake.calls.at(-1)).toEqual({ method: 'documents.cancel', params: { docId: 'doc1' } });
  });

  it('after a restart, shows an interrupted document at its last snapshot with resume', () => {
    fake.handle('documents.resume', () => makeDoc({ status: 'queued' }));
    render(<IngestProgress doc={makeDoc({ status: 'interrupted', tokenCount: 1000, tokensIngested: 400 })} />);
    expect(screen.getByRole('heading').textContent).toBe('Interrupted');
    expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('40');
    expect(screen.queryByRole('button', { name: 'Cancel reading' })).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Resume reading' }));
    expect(fake.calls.at(-1)?.method).toBe('documents.resume');
  });

  it('shows why reading failed', () => {
    render(<IngestProgress doc={makeDoc({ status: 'error', error: 'This PDF has no text layer' })} />);
    expect(screen.getByText('This PDF has no text layer')).toBeTruthy();
  });
});
