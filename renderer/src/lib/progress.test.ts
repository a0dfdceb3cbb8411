import { describe, expect, it } from 'vitest';
import { makeDoc } from '../test/fakeClient';
import { progressView } from './progress';

describe('progressView', () => {
  it('rebuilds an ingest in progress from the stored document after a reload', () => {
    const view = progressView(makeDoc({ status: 'ingesting', tokenCount: 1000, tokensIngested: 250 }));
    expect(view.stage).toBe('ingesting');
    expect(view.fraction).toBe(0.25);
    expect(view.canCancel).toBe(true);
    expect(view.canResume).toBe(false);
  });

  it('prefers the live event while it agrees with the document', () => {
    const doc = makeDoc({ status: 'ingesting', tokenCount: 1000, tokensIngested: 250 });
    const view = progressView(doc, { docId: doc.id, phase: 'ingesting', done: 600, total: 1000, tokensPerSecond: 321, etaSeconds: 12 });
    expect(view.fraction).toBe(0.6);
    expect(view.tokensPerSecond).toBe(321);
    expect(view.etaSeconds).toBe(12);
  });

  it('ignores a finished event from an earlier run when the document is queued again', () => {
    const doc = makeDoc({ status: 'queued', tokensIngested: 0 });
    const view = progressView(doc, { docId: doc.id, phase: 'done', done: 400, total: 400, tokensPerSecond: 0, etaSeconds: null });
    expect(view.stage).toBe('queued');
    expect(view.fraction).toBeNull();
  });

  it('offers resume for interrupted, cancelled and failed documents', () => {
    const interrupted = progressView(makeDoc({ status: 'interrupted', tokenCount: 1000, tokensIngested: 500 }));
    expect(interrupted).toMatchObject({ stage: 'interrupted', fraction: 0.5, canResume: true, canCancel: false });
    expect(progressView(makeDoc({ status: 'cancelled' })).canResume).toBe(true);
    const failed = progressView(makeDoc({ status: 'error', error: 'bad PDF' }));
    expect(failed).toMatchObject({ stage: 'error', message: 'bad PDF', canResume: true });
  });

  it('is full when ready', () => {
    expect(progressView(makeDoc()).fraction).toBe(1);
  });

  it('shows indexing by characters', () => {
    const doc = makeDoc({ status: 'indexing' });
    const view = progressView(doc, { docId: doc.id, phase: 'indexing', done: 50, total: 200, tokensPerSecond: 0, etaSeconds: null });
    expect(view).toMatchObject({ unit: 'characters', fraction: 0.25 });
  });
});
