// What the ingestion view shows for one document, from the document's stored status (which
// survives reloads and restarts) and the latest progress event (which is live but transient).
import type { DocumentInfo, DocumentStatus, IngestPhase, IngestProgress } from '../../../electron/api/types';

export type ProgressStage = IngestPhase | 'interrupted';

export interface ProgressView {
  stage: ProgressStage;
  label: string;
  /** 0..1 for a bar with a known length; null while the length is unknown (queued, reading). */
  fraction: number | null;
  done: number;
  total: number;
  unit: 'tokens' | 'characters' | 'bytes';
  tokensPerSecond: number;
  etaSeconds: number | null;
  message: string | null;
  active: boolean;
  canCancel: boolean;
  canResume: boolean;
}

const ACTIVE_STATUS = new Set<DocumentStatus>(['queued', 'reading', 'indexing', 'ingesting']);
const ACTIVE_PHASE = new Set<IngestPhase>(['queued', 'reading', 'indexing', 'ingesting']);

export const STAGE_LABELS: Record<ProgressStage, string> = {
  queued: 'Waiting its turn',
  reading: 'Reading the file',
  indexing: 'Indexing passages',
  ingesting: 'Reading with the model',
  done: 'Ready',
  error: 'Failed',
  cancelled: 'Cancelled',
  interrupted: 'Interrupted',
};

function stageOfStatus(status: DocumentStatus): ProgressStage {
  return status === 'ready' ? 'done' : status;
}

export function isActive(doc: DocumentInfo): boolean {
  return ACTIVE_STATUS.has(doc.status);
}

export function progressView(doc: DocumentInfo, live?: IngestProgress | null): ProgressView {
  const docActive = ACTIVE_STATUS.has(doc.status);
  // A live event counts while it agrees with the document: both active, or it has just finished.
  const useLive = live && live.docId === doc.id &&
    ((docActive && ACTIVE_PHASE.has(live.phase)) || (!docActive && live.phase === 'done' && doc.status === 'ready'));
  const stage: ProgressStage = useLive ? live.phase : stageOfStatus(doc.status);
  let done = doc.tokensIngested;
  let total = doc.tokenCount;
  let unit: ProgressView['unit'] = 'tokens';
  let tokensPerSecond = 0;
  let etaSeconds: number | null = null;
  if (useLive) {
    done = live.done;
    total = live.total;
    unit = live.phase === 'indexing' ? 'characters' : live.phase === 'reading' ? 'bytes' : 'tokens';
    tokensPerSecond = live.tokensPerSecond;
    etaSeconds = live.etaSeconds;
  }
  let fraction: number | null = null;
  if (stage === 'done') fraction = 1;
  else if (total > 0 && (stage === 'ingesting' || stage === 'indexing' || stage === 'interrupted' || stage === 'cancelled')) {
    fraction = Math.max(0, Math.min(1, done / total));
  }
  if (stage === 'reading') fraction = null;
  const message = doc.status === 'error' ? doc.error ?? live?.message ?? null : useLive ? live.message ?? null : null;
  return {
    stage,
    label: STAGE_LABELS[stage],
    fraction,
    done,
    total,
    unit,
    tokensPerSecond,
    etaSeconds,
    message,
    active: docActive,
    canCancel: docActive,
    canResume: doc.status === 'interrupted' || doc.status === 'cancelled' || doc.status === 'error',
  };
}
