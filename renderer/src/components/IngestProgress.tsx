// The ingestion view of one document: phase, progress bar, tokens/s, time left, cancel and resume.
import type { DocumentInfo } from '../../../electron/api/types';
import { formatCount, formatDuration, formatPercent, formatRate } from '../lib/format';
import { progressView } from '../lib/progress';
import { useDocuments } from '../stores/documents';
import { useProgress } from '../stores/progress';
import { ProgressBar } from './ProgressBar';

const UNIT_NAMES = { tokens: 'tokens', characters: 'characters', bytes: 'bytes' } as const;

export function IngestProgress({ doc }: { doc: DocumentInfo }) {
  const live = useProgress((s) => s.live[doc.id]);
  const { cancel, resume } = useDocuments.getState();
  const view = progressView(doc, live);
  const counting = view.total > 0 && view.stage !== 'queued' && view.stage !== 'reading';
  return (
    <section className={`ingest stage-${view.stage}`} aria-label={`Reading progress of ${doc.title}`}>
      <div className="ingest-head">
        <h2>{view.label}</h2>
        {view.fraction !== null && view.stage !== 'done' && <span className="ingest-percent">{formatPercent(view.fraction)}</span>}
      </div>
      <ProgressBar fraction={view.fraction} label={`${view.label}: ${doc.title}`} />
      <dl className="ingest-stats">
        {counting && (
          <div><dt>Progress</dt><dd>{formatCount(view.done)} of {formatCount(view.total)} {UNIT_NAMES[view.unit]}</dd></div>
        )}
        {view.stage === 'ingesting' && view.tokensPerSecond > 0 && <div><dt>Speed</dt><dd>{formatRate(view.tokensPerSecond)}</dd></div>}
        {view.stage === 'ingesting' && <div><dt>Time left</dt><dd>{formatDuration(view.etaSeconds)}</dd></div>}
      </dl>
      {view.stage === 'interrupted' && (
        <p className="hint">Folio stopped before it finished reading. Resume continues from the last snapshot, not from the start.</p>
      )}
      {view.stage === 'cancelled' && <p className="hint">Reading was cancelled. Resume continues from the last snapshot.</p>}
      {view.message && <p className="error-text">{view.message}</p>}
      {view.stage === 'queued' && <p className="hint">Another document is being read; this one starts next.</p>}
      <div className="row">
        {view.canCancel && <button type="button" className="secondary" onClick={() => void cancel(doc.id)}>Cancel reading</button>}
        {view.canResume && <button type="button" onClick={() => void resume(doc.id)}>Resume reading</button>}
      </div>
    </section>
  );
}
