// The reader: outline beside the virtualized text; follows the reader store's jump targets.
import { useCallback, useState } from 'react';
import type { DocumentDetail } from '../../../electron/api/types';
import { useReader } from '../stores/reader';
import { currentSection, Outline } from './Outline';
import { VirtualText } from './VirtualText';

export function Reader({ detail }: { detail: DocumentDetail }) {
  const target = useReader((s) => (s.target?.docId === detail.id ? s.target : null));
  const savedPos = useReader((s) => s.positions[detail.id] ?? 0);
  const [initialPos] = useState(savedPos);
  const [pos, setPos] = useState(savedPos);
  const jump = useReader((s) => s.jump);
  const remember = useReader((s) => s.rememberPosition);
  const onPosition = useCallback((charPos: number) => {
    setPos(charPos);
    remember(detail.id, charPos);
  }, [detail.id, remember]);
  const onJump = useCallback((charPos: number) => jump(detail.id, charPos), [detail.id, jump]);
  const structured = detail.sections.length > 0 || detail.pages.length > 1;
  return (
    <div className={`reader${structured ? '' : ' no-outline'}`}>
      {structured && <Outline sections={detail.sections} pages={detail.pages} current={currentSection(detail.sections, target?.charStart ?? pos)}
        onJump={onJump} />}
      <VirtualText key={`${detail.id}:${detail.charCount}`} docId={detail.id} title={detail.title} charCount={detail.charCount}
        monospace={detail.format === 'code'} target={target} initialPos={initialPos} onPosition={onPosition} />
    </div>
  );
}
