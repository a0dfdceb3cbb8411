// A determinate bar when the length is known, an indeterminate one while it is not.
export function ProgressBar({ fraction, label }: { fraction: number | null; label: string }) {
  const pct = fraction === null ? undefined : Math.round(fraction * 1000) / 10;
  return (
    <div className={`progress-bar${fraction === null ? ' indeterminate' : ''}`} role="progressbar" aria-label={label}
      aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
      <div className="progress-fill" style={fraction === null ? undefined : { width: `${pct}%` }} />
    </div>
  );
}
