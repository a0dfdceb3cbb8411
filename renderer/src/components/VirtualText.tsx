// The document's text, virtualized: only the blocks in and near the view are fetched and
// rendered; the rest is space of estimated (then measured) height. The block at the top of
// the view stays put while heights above it change, and jumps land on their target.
import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useReducer, useRef, useState, useSyncExternalStore } from 'react';
import { client } from '../api/current';
import { describeError } from '../lib/errors';
import { DocumentText } from '../lib/textCache';
import {
  blockBounds, blockCount, DEFAULT_LAYOUT, estimateBlockHeight, HeightMap, intersect, nominalBlock, trimRange, visibleBlocks,
} from '../lib/virtualText';
import type { ReaderTarget } from '../stores/reader';

interface Props {
  docId: string;
  title: string;
  charCount: number;
  monospace: boolean;
  target: ReaderTarget | null;
  initialPos: number;
  onPosition(charPos: number): void;
}

const OVERSCAN_PX = 900;
const B = DEFAULT_LAYOUT.blockChars;

interface Metrics {
  lineHeight: number;
  charsPerLine: number;
}

function metricsFor(width: number, monospace: boolean): Metrics {
  const fontSize = monospace ? 13.5 : 17;
  const lineHeight = fontSize * (monospace ? 1.5 : 1.65);
  const column = Math.min(Math.max(200, width - 64), monospace ? 100 * fontSize * 0.6 : 70 * fontSize * 0.55);
  return { lineHeight, charsPerLine: Math.floor(column / (fontSize * (monospace ? 0.6 : 0.5))) };
}

interface BlockProps {
  k: number;
  fetched: string | undefined;
  failure: string | undefined;
  charCount: number;
  estimate: number;
  target: ReaderTarget | null;
  onRetry(): void;
}

const TextBlock = memo(function TextBlock({ k, fetched, failure, charCount, estimate, target, onRetry }: BlockProps) {
  if (fetched === undefined) {
    return (
      <div className="text-block placeholder" data-block={k} style={{ height: estimate }}>
        {failure ? (
          <p className="error-text">This part of the text could not be loaded: {failure}{' '}
            <button type="button" className="link" onClick={onRetry}>Try again</button></p>
        ) : <span className="loading-lines" aria-hidden="true" />}
      </div>
    );
  }
  const { start, end } = blockBounds(k, fetched, charCount);
  const base = k * B;
  const text = fetched.slice(start - base, end - base);
  const found = target ? intersect(target.charStart, target.charEnd, start, end) : null;
  const hit = found && target?.highlight ? trimRange(text, found.from, found.to) : found;
  // A block holding only the passage's trailing whitespace gets no mark of its own.
  if (!hit || !target || (target.highlight && hit.to <= hit.from)) {
    return <div className="text-block" data-block={k} data-loaded="">{text}</div>;
  }
  const marker = target.highlight && hit.to > hit.from
    ? <mark data-target="" className="passage">{text.slice(hit.from, hit.to)}</mark>
    : <span data-target="" className="jump-point" />;
  return (
    <div className="text-block" data-block={k} data-loaded="">
      {text.slice(0, hit.from)}{marker}{text.slice(hit.to)}
    </div>
  );
});

export function VirtualText({ docId, title, charCount, monospace, target, initialPos, onPosition }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  const content = useRef<HTMLDivElement>(null);
  const [size, setSize] = useState({ width: 0, height: 0 });
  const [, relayout] = useReducer((n: number) => n + 1, 0);
  const count = blockCount(charCount);
  const metrics = metricsFor(size.width, monospace);
  const estimate = estimateBlockHeight(Math.min(B, charCount), metrics.charsPerLine, metrics.lineHeight);

  const text = useMemo(() => new DocumentText(charCount,
    (charStart, charEnd) => client().call('documents.text', { docId, charStart, charEnd }).then((r) => r.text)), [docId, charCount]);
  useSyncExternalStore(text.subscribe, text.snapshot);
  const map = useMemo(() => new HeightMap(count, estimate), [count]); // eslint-disable-line react-hooks/exhaustive-deps
  const widthSeen = useRef(0);
  if (size.width && Math.abs(size.width - widthSeen.current) > 1) {
    // A new column width invalidates every measured height.
    map.reset(estimate);
    widthSeen.current = size.width;
  }

  // The block at the top of the view and how far into it the view starts.
  // Opened to show a passage: start there rather than at the remembered position.
  const startPos = target && target.docId === docId ? target.charStart : initialPos;
  const anchor = useRef({ block: nominalBlock(startPos, charCount), offset: 0 });
  const restoreAnchor = useRef(true);
  const pendingTarget = useRef<ReaderTarget | null>(initialPos > 0 ? { docId, charStart: initialPos, charEnd: initialPos, highlight: false, seq: -1 } : null);
  const [range, setRange] = useState(() => ({ first: Math.max(0, anchor.current.block - 1), last: Math.min(count - 1, anchor.current.block + 2) }));

  /** Scrolls (when `top` is given) and takes the anchor from where the view now is. */
  const syncAnchor = useCallback((top?: number) => {
    const el = scroller.current;
    if (!el) return;
    if (top !== undefined && Math.abs(el.scrollTop - top) > 0.5) el.scrollTop = top;
    const k = map.indexAt(el.scrollTop);
    anchor.current = { block: k, offset: el.scrollTop - map.top(k) };
  }, [map]);

  const updateRange = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    const next = visibleBlocks(map, el.scrollTop, el.clientHeight || 800, OVERSCAN_PX);
    setRange((r) => (r.first === next.first && r.last === next.last ? r : next));
  }, [map]);

  // The jump target: render around it, then scroll to its marker once its block has text.
  useEffect(() => {
    if (!target || target.docId !== docId) return;
    const k = nominalBlock(target.charStart, charCount);
    pendingTarget.current = target;
    anchor.current = { block: Math.max(0, k), offset: 0 };
    restoreAnchor.current = true;
    setRange({ first: Math.max(0, k - 1), last: Math.min(count - 1, k + 1) });
    relayout();
  }, [target, docId, charCount, count]);

  useEffect(() => {
    text.ensure(range.first, range.last, describeError);
  }, [text, range]);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setSize({ width: el.clientWidth, height: el.clientHeight }));
    observer.observe(el);
    setSize({ width: el.clientWidth, height: el.clientHeight });
    return () => observer.disconnect();
  }, []);

  // After every render: record measured heights, keep the anchor in place, land pending jumps.
  useLayoutEffect(() => {
    const el = scroller.current;
    const box = content.current;
    if (!el || !box) return;
    let changed = false;
    for (const child of Array.from(box.children) as HTMLElement[]) {
      // Zero: not laid out (hidden, or no layout at all); keep the estimate.
      if (child.dataset.loaded === undefined || child.offsetHeight === 0) continue;
      changed = map.set(Number(child.dataset.block), child.offsetHeight) || changed;
    }
    if (changed) {
      restoreAnchor.current = true;
      relayout();
      return;
    }
    if (restoreAnchor.current) {
      restoreAnchor.current = false;
      syncAnchor(map.top(anchor.current.block) + anchor.current.offset);
    }
    const wanted = pendingTarget.current;
    if (wanted) {
      const marker = box.querySelector<HTMLElement>('[data-target]');
      if (marker) {
        pendingTarget.current = null;
        const offset = marker.getBoundingClientRect().top - el.getBoundingClientRect().top;
        syncAnchor(el.scrollTop + offset - (wanted.highlight ? Math.max(24, el.clientHeight / 3) : 8));
        if (wanted.highlight) marker.classList.add('flash');
      }
    }
    updateRange();
  });

  const positionTimer = useRef<number | undefined>(undefined);
  const onScroll = () => {
    syncAnchor();
    updateRange();
    const { block: k, offset } = anchor.current;
    window.clearTimeout(positionTimer.current);
    positionTimer.current = window.setTimeout(() => {
      const h = map.height(k) || 1;
      onPosition(Math.min(charCount, Math.max(0, Math.round(k * B + Math.min(1, offset / h) * B))));
    }, 200);
  };
  useEffect(() => () => window.clearTimeout(positionTimer.current), []);

  const blocks = [];
  for (let k = range.first; k <= range.last && k < count; k++) {
    blocks.push(
      <TextBlock key={k} k={k} fetched={text.get(k)} failure={text.failure(k)} charCount={charCount}
        estimate={map.height(k)} target={target && target.docId === docId ? target : pendingTarget.current}
        onRetry={() => text.retry()} />,
    );
  }
  return (
    <div ref={scroller} className={`reader-scroll${monospace ? ' monospace' : ''}`} onScroll={onScroll} tabIndex={0}
      role="document" aria-label={`Text of ${title}`} data-testid="reader-text">
      <div className="reader-space" style={{ height: map.total() }}>
        <div ref={content} className="reader-blocks" style={{ transform: `translateY(${map.top(range.first)}px)` }}>
          {blocks}
        </div>
      </div>
    </div>
  );
}
