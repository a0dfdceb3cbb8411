// A numbered citation: opens the cited passage in the reader and highlights it.
import type { Citation } from '../../../electron/api/types';
import { displayText } from '../lib/answerParts';
import { useDocuments } from '../stores/documents';
import { useReader } from '../stores/reader';

export function openCitation(citation: Pick<Citation, 'docId' | 'charStart' | 'charEnd'>): void {
  const documents = useDocuments.getState();
  if (documents.selectedId !== citation.docId && documents.docs[citation.docId]) documents.select(citation.docId);
  useReader.getState().show(citation.docId, citation.charStart, citation.charEnd);
}

function snippet(text: string, max = 220): string {
  const flat = displayText(text).replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** The inline [n] in an answer's text. */
export function CitationRef({ citation }: { citation: Citation }) {
  return (
    <button type="button" className="cite-ref" onClick={() => openCitation(citation)}
      aria-label={`Open citation ${citation.n}: ${citation.location}`} title={snippet(citation.text)}>
      {citation.n}
    </button>
  );
}

/** A source under an answer: number, location, and the start of the passage. */
export function CitationChip({ citation }: { citation: Citation }) {
  return (
    <li>
      <button type="button" className="cite-chip" onClick={() => openCitation(citation)}
        aria-label={`Citation ${citation.n}: ${citation.location}, open in the reader`} title={snippet(citation.text, 600)}>
        <span className="cite-n">[{citation.n}]</span>
        <span className="cite-where">{citation.location || citation.sectionLabel || citation.docTitle}</span>
        <span className="cite-text">{snippet(citation.text, 140)}</span>
      </button>
    </li>
  );
}
