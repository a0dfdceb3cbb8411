// A friendly explanation where there is nothing to show yet, with what to do next.
import type { ReactNode } from 'react';

export function EmptyState({ title, children, action }: { title: string; children?: ReactNode; action?: ReactNode }) {
  return (
    <div className="empty-state">
      <h2>{title}</h2>
      {children}
      {action && <div className="row">{action}</div>}
    </div>
  );
}
