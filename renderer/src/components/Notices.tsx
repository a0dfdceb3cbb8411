// Errors and short messages, announced to screen readers.
import { useNotices } from '../stores/notices';

export function Notices() {
  const notices = useNotices((s) => s.notices);
  const dismiss = useNotices((s) => s.dismiss);
  return (
    <div className="notices" aria-live="polite">
      {notices.map((n) => (
        <div key={n.id} className={`notice ${n.kind}`} role={n.kind === 'error' ? 'alert' : 'status'}>
          <span>{n.text}</span>
          <button type="button" className="icon" aria-label="Dismiss message" onClick={() => dismiss(n.id)}>×</button>
        </div>
      ))}
    </div>
  );
}
