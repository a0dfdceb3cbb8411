// One document in the library: title, size in tokens, status, and a small bar while it is read.
import type { DocumentInfo } from '../../../electron/api/types';
import { formatBytes, formatTokens, formatPercent } from '../lib/format';
import { progressView, type ProgressStage } from '../lib/progress';
import { useProgress } from '../stores/progress';
import { ProgressBar } from './ProgressBar';

const FORMAT_NAMES: Record<DocumentInfo['format'], string> = {
  text: 'Text', markdown: 'Markdown', pdf: 'PDF', epub: 'EPUB', docx: 'Word', html: 'HTML', code: 'Code',
};

/** The row's status word, from the progress view (fresher than the stored status while reading). */
export function statusText(stage: ProgressStage, fraction: number | null): string {
  switch (stage) {
    case 'done': return 'Ready';
    case 'ingesting': return fraction !== null ? `Reading ${formatPercent(fraction)}` : 'Reading';
    case 'queued': return 'Waiting';
    case 'reading': return 'Opening the file';
    case 'indexing': return 'Indexing';
    case 'error': return 'Failed';
    case 'interrupted': return 'Interrupted';
    case 'cancelled': return 'Cancelled';
  }
}

export function DocumentRow({ doc, selected, onSelect }: { doc: DocumentInfo; selected: boolean; onSelect(): void }) {
  const live = useProgress((s) => s.live[doc.id]);
  const view = progressView(doc, live);
  const size = doc.tokenCount > 0 ? formatTokens(doc.tokenCount) : doc.sourceBytes > 0 ? formatBytes(doc.sourceBytes) : '';
  const status = statusText(view.stage, view.fraction);
  return (
    <li>
      <button type="button" className={`doc-row${selected ? ' selected' : ''}`} aria-current={selected ? 'true' : undefined}
        onClick={onSelect} title={doc.sourcePath}>
        <span className="doc-title">{doc.title}</span>
        <span className="doc-meta">
          <span className={`badge stage-${view.stage}`}>{status}</span>
          <span>{FORMAT_NAMES[doc.format]}</span>
          {size && <span>{size}</span>}
          {doc.modelFingerprint && <span className="fingerprint" title={`Read by the model with fingerprint ${doc.modelFingerprint}`}>model {doc.modelFingerprint.slice(0, 6)}</span>}
        </span>
        {view.active && <ProgressBar fraction={view.fraction} label={`${status}: ${doc.title}`} />}
      </button>
    </li>
  );
}
