// Settings: the model's info card and the backend settings (threads, snapshot interval,
// answer length, temperature, speculative decoding with what its automatic setting measured). Each
// field is saved when it changes.
import { useEffect, useRef, useState } from 'react';
import type { Settings } from '../../../electron/api/requests';
import type { SpeculativeMeasurement } from '../../../electron/api/types';
import { client } from '../api/current';
import { formatRate } from '../lib/format';
import { useEngine, type SettingKey } from '../stores/engine';
import { useUi } from '../stores/ui';
import { ModelCard } from './ModelCard';

interface FieldSpec {
  key: SettingKey;
  label: string;
  hint: string;
  min: number;
  max: number;
  step: number;
}

const FIELDS: FieldSpec[] = [
  { key: 'threads', label: 'Threads', hint: 'CPU threads the model uses; 0 uses every core.', min: 0, max: 256, step: 1 },
  { key: 'snapshotInterval', label: 'Snapshot interval (tokens)', min: 1024, max: 16_777_216, step: 1024,
    hint: 'How often a state is saved while a document is read: resuming re-reads at most this many tokens. Smaller uses more disk.' },
  { key: 'maxAnswerTokens', label: 'Longest answer (tokens)', hint: 'Answers stop after this many tokens.', min: 1, max: 2048, step: 1 },
  { key: 'temperature', label: 'Temperature', hint: '0 always picks the likeliest word; higher values vary the wording.', min: 0, max: 2, step: 0.05 },
];

function SettingField({ spec, value }: { spec: FieldSpec; value: number }) {
  const [text, setText] = useState(String(value));
  const error = useEngine((s) => s.settingErrors[spec.key]);
  const save = useEngine((s) => s.saveSetting);
  useEffect(() => setText(String(value)), [value]);
  const commit = () => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) {
      setText(String(value));
      return;
    }
    if (n !== value) void save(spec.key, n);
  };
  const id = `setting-${spec.key}`;
  return (
    <div className="field">
      <label htmlFor={id}>{spec.label}</label>
      <input id={id} type="number" inputMode="decimal" min={spec.min} max={spec.max} step={spec.step} value={text}
        aria-describedby={`${id}-hint`} aria-invalid={error ? true : undefined}
        onChange={(e) => setText(e.currentTarget.value)} onBlur={commit}
        onKeyDown={(e) => { if (e.key === 'Enter') commit(); }} />
      <p id={`${id}-hint`} className="hint">{spec.hint}</p>
      {error && <p className="error-text" role="alert">{error}</p>}
    </div>
  );
}

/** What the automatic setting has measured on this machine's answers and summaries, and what it does. */
export function speculativeMeasurementText(measured: SpeculativeMeasurement | null): string {
  // The backend measures only models with extra heads.
  if (!measured) return 'This model has no extra prediction heads, so it always decodes plainly.';
  const way = (rate: number | null, runs: number, name: string) =>
    rate === null ? `no ${name} decode yet` : `${formatRate(rate)} ${name} (${runs} ${runs === 1 ? 'run' : 'runs'})`;
  const speeds = `${way(measured.speculativeTokensPerSecond, measured.speculativeRuns, 'speculative')}, ` +
    `${way(measured.plainTokensPerSecond, measured.plainRuns, 'plain')}`;
  if (measured.faster === null) {
    return `Automatic is still measuring on your answers and summaries, alternating between the two ways: ${speeds}.`;
  }
  const ratio = measured.speculativeTokensPerSecond! / measured.plainTokensPerSecond!;
  return `Measured on your answers and summaries: ${speeds}, ${ratio.toFixed(2)}×, so they ` +
    `${measured.faster ? 'use it' : 'decode plainly'} (one in ${measured.exploreEvery} tries the other way to keep this current).`;
}

function SpeculativeField({ mode }: { mode: number }) {
  const save = useEngine((s) => s.saveSetting);
  const error = useEngine((s) => s.settingErrors.speculative);
  const model = useEngine((s) => s.status?.model);
  return (
    <div className="field">
      <label htmlFor="setting-speculative">Speculative decoding</label>
      <select id="setting-speculative" value={mode} aria-describedby="setting-speculative-hint"
        onChange={(e) => void save('speculative', Number(e.currentTarget.value))}>
        <option value={2}>Automatic (when it is faster with this model)</option>
        <option value={1}>On</option>
        <option value={0}>Off</option>
      </select>
      <p id="setting-speculative-hint" className="hint">
        The model&apos;s extra prediction heads draft several words at once and one pass checks them. Answers are the
        same either way; it is faster when the heads often agree with the model.
        {mode === 2 && model && <> {speculativeMeasurementText(model.speculative)}</>}
      </p>
      {error && <p className="error-text" role="alert">{error}</p>}
    </div>
  );
}

export function SettingsDialog() {
  const open = useUi((s) => s.settingsOpen);
  const setOpen = useUi((s) => s.setSettingsOpen);
  const status = useEngine((s) => s.status);
  const settings = useEngine((s) => s.settings);
  const statusError = useEngine((s) => s.statusError);
  const dialog = useRef<HTMLDivElement>(null);
  const opener = useRef<Element | null>(null);

  useEffect(() => {
    if (!open) return;
    opener.current = document.activeElement;
    void useEngine.getState().loadSettings();
    void useEngine.getState().refresh();
    dialog.current?.querySelector<HTMLElement>('button, input')?.focus();
    return () => (opener.current as HTMLElement | null)?.focus?.();
  }, [open]);

  if (!open) return null;
  return (
    <div className="modal-backdrop" onMouseDown={(e) => { if (e.target === e.currentTarget) setOpen(false); }}>
      <div className="modal" role="dialog" aria-modal="true" aria-labelledby="settings-title" ref={dialog}
        onKeyDown={(e) => {
          if (e.key === 'Escape') {
            e.stopPropagation();
            setOpen(false);
          }
        }}>
        <header className="modal-head">
          <h2 id="settings-title">Settings</h2>
          <button type="button" className="icon" aria-label="Close settings" onClick={() => setOpen(false)}>×</button>
        </header>
        <h3 className="section-title">Model</h3>
        {status?.model ? <ModelCard model={status.model} /> : <p className="hint">{statusError ?? 'The model is loading…'}</p>}
        <p className="hint">
          {client().kind === 'desktop'
            ? 'To use another GGUF model, choose File › Choose Model… in the menu; each document then offers to be read again by the new model.'
            : 'To use another GGUF model, restart the server with --model PATH (or FOLIO_MODEL).'}
        </p>
        <h3 className="section-title">Reading and answers</h3>
        {settings ? (
          <form className="settings-form" onSubmit={(e) => e.preventDefault()}>
            {FIELDS.map((spec) => <SettingField key={spec.key} spec={spec} value={settings[spec.key as keyof Settings]} />)}
            <SpeculativeField mode={settings.speculative} />
          </form>
        ) : <p className="hint">Loading settings…</p>}
        <h3 className="section-title">Where data lives</h3>
        <p className="hint">
          {client().kind === 'desktop'
            ? 'File › Open Data Folder shows the library: texts, indexes and the model\'s saved states.'
            : 'The server keeps the library in its --data folder (FOLIO_DATA), by default the platform\'s app-data folder.'}
        </p>
      </div>
    </div>
  );
}
