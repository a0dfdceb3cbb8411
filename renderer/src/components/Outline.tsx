// The document's structure (chapters, headings, files, pages) as a list of jumps; the section
// being read is marked.
import { memo } from 'react';
import type { SectionInfo } from '../../../electron/api/types';

/** The last section starting at or before `charPos` (the deepest one when several start there). */
export function currentSection(sections: readonly SectionInfo[], charPos: number): number | null {
  let best: SectionInfo | null = null;
  for (const s of sections) {
    if (s.charStart > charPos) continue;
    if (s.charEnd <= charPos && !(s.charEnd === s.charStart)) continue;
    if (!best || s.charStart > best.charStart || (s.charStart === best.charStart && s.level > best.level)) best = s;
  }
  return best?.idx ?? null;
}

interface Props {
  sections: readonly SectionInfo[];
  pages: readonly { page: number; charStart: number }[];
  current: number | null;
  onJump(charPos: number): void;
}

export const Outline = memo(function Outline({ sections, pages, current, onJump }: Props) {
  const minLevel = Math.min(...sections.map((s) => s.level), 1);
  return (
    <nav className="outline" aria-label="Outline">
      {sections.length > 0 && (
        <ol>
          {sections.map((s) => (
            <li key={s.idx} style={{ paddingInlineStart: `${(s.level - minLevel) * 0.9}rem` }}>
              <button type="button" className={`outline-item${s.idx === current ? ' current' : ''}`}
                aria-current={s.idx === current ? 'location' : undefined} onClick={() => onJump(s.charStart)}
                title={s.path ?? s.label}>
                {s.label || '(untitled)'}
              </button>
            </li>
          ))}
        </ol>
      )}
      {pages.length > 1 && (
        <label className="page-jump">
          Page
          <select aria-label="Go to page" value="" onChange={(e) => onJump(Number(e.currentTarget.value))}>
            <option value="" disabled>Go to…</option>
            {pages.map((p) => <option key={p.page} value={p.charStart}>{p.page}</option>)}
          </select>
        </label>
      )}
    </nav>
  );
});
