// Summaries of the selected document: the whole and each chapter, with key passages; streamed,
// cached by the backend, regenerated on request, exported as Markdown.
import { useEffect, useMemo } from 'react';
import type { DocumentDetail, DocumentInfo, KeyPassage, SectionSummary } from '../../../electron/api/types';
import { displayText } from '../lib/answerParts';
import { markdownFileName, summaryMarkdown } from '../lib/summaryMarkdown';
import { useDocuments } from '../stores/documents';
import { useReader } from '../stores/reader';
import { emptySummary, useSummaries } from '../stores/summaries';
import { openCitation } from './CitationChip';

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/markdown;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function KeyPassages({ docId, passages }: { docId: string; passages: KeyPassage[] }) {
  if (!passages.length) return null;
  return (
    <div className="key-passages">
      <h5>Key passages</h5>
      <ul>
        {passages.map((k) => (
          <li key={k.passageIdx}>
            <button type="button" className="key-passage" onClick={() => openCitation({ docId, charStart: k.charStart, charEnd: k.charEnd })}
              aria-label={`Open key passage at character ${k.charStart} in the reader`}>
              “{displayText(k.text).replace(/\s+/g, ' ').trim().slice(0, 180)}…”
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

function SummaryBlock({ docId, heading, summary, streaming, charStart }: {
  docId: string; heading: string; summary?: SectionSummary; streaming?: string; charStart?: number;
}) {
  const jump = useReader((s) => s.jump);
  const text = summary ? summary.text : streaming ?? '';
  return (
    <section className="summary-block" aria-label={heading} aria-busy={streaming !== undefined && !summary}>
      <h4>
        {charStart !== undefined
          ? <button type="button" className="link" onClick={() => jump(docId, charStart)} aria-label={`${heading}: open in the reader`}>{heading}</button>
          : heading}
        {summary?.cached && <span className="badge subtle" title="Written earlier and kept">saved</span>}
      </h4>
      <p className="summary-text">{displayText(text).trim() || (streaming !== undefined ? 'Writing…' : '')}
        {streaming !== undefined && !summary && <span className="cursor" aria-hidden="true" />}</p>
      {summary && <KeyPassages docId={docId} passages={summary.keyPassages} />}
    </section>
  );
}

export function SummaryPanel({ doc }: { doc: DocumentInfo }) {
  const entry = useSummaries((s) => s.byDoc[doc.id] ?? emptySummary);
  const detail: DocumentDetail | undefined = useDocuments((s) => s.details[doc.id]);
  const { generate, stop, restore } = useSummaries.getState();
  const ready = doc.status === 'ready';
  const running = entry.status === 'running';

  useEffect(() => {
    if (ready) restore(doc.id);
  }, [doc.id, ready, restore]);

  const sectionsByIdx = useMemo(() => new Map((detail?.sections ?? []).map((s) => [s.idx, s])), [detail]);
  const streamingSections = Object.keys(entry.streaming).map(Number).filter((i) => i >= 0 && !entry.sections.some((s) => s.sectionIdx === i));
  const hasAny = entry.document || entry.sections.length || Object.keys(entry.streaming).length;

  return (
    <section className="summary-panel" aria-label={`Summary of ${doc.title}`}>
      <div className="summary-actions row">
        {running ? (
          <button type="button" className="danger" onClick={() => void stop(doc.id)} title="Stop (Esc)">Stop</button>
        ) : (
          <button type="button" disabled={!ready} onClick={() => void generate(doc.id, Boolean(entry.document))}>
            {entry.document ? 'Regenerate' : 'Summarize'}
          </button>
        )}
        <button type="button" className="secondary" disabled={!entry.document && !entry.sections.length}
          onClick={() => download(markdownFileName(doc.title), summaryMarkdown(doc.title, entry.document, entry.sections))}>
          Export Markdown
        </button>
      </div>
      {running && <p className="hint" role="status">Writing the summary… each chapter is summarized from where the model finished reading it.</p>}
      {entry.status === 'stopped' && <p className="hint">Stopped. The parts already written are kept.</p>}
      {entry.error && <p className="error-text" role="alert">{entry.error}</p>}
      {!hasAny && !running && (
        <div className="panel-empty">
          {ready ? (
            <>
              <p><strong>Summarize {doc.title}.</strong></p>
              <p>Folio writes a summary of each chapter and one of the whole document, with the key passages of each.
                They are saved, so they open at once next time.</p>
            </>
          ) : <p>Summaries can be written once the model has read the document.</p>}
        </div>
      )}
      {(entry.document || entry.streaming[-1] !== undefined) && (
        <SummaryBlock docId={doc.id} heading="The whole document" summary={entry.document ?? undefined} streaming={entry.streaming[-1]} />
      )}
      {(entry.sections.length > 0 || streamingSections.length > 0) && <h3 className="summary-sections-title">By chapter</h3>}
      {entry.sections.map((s) => (
        <SummaryBlock key={s.sectionIdx} docId={doc.id} heading={s.label} summary={s} charStart={sectionsByIdx.get(s.sectionIdx)?.charStart} />
      ))}
      {streamingSections.map((i) => (
        <SummaryBlock key={`live-${i}`} docId={doc.id} heading={sectionsByIdx.get(i)?.label ?? `Section ${i + 1}`}
          streaming={entry.streaming[i]} charStart={sectionsByIdx.get(i)?.charStart} />
      ))}
    </section>
  );
}
