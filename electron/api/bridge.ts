// The shape of `window.folio`, the only thing the desktop app's preload exposes to the page.
// Types only: the preload implements it, the renderer's desktop transport consumes it.
import type { Method, RequestParams, ResultTypes } from './requests';
import type { ApiErrorBody, BackendEvent } from './types';

/** A call's outcome as plain data: errors thrown across the context bridge lose their code. */
export type CallOutcome<T> = { ok: true; result: T } | { ok: false; error: ApiErrorBody };

export interface FolioBridge {
  readonly version: 1;
  call<M extends Method>(method: M, params: RequestParams<M>): Promise<CallOutcome<ResultTypes[M]>>;
  /** Subscribes to backend events; returns the function that unsubscribes. */
  onEvent(listener: (event: BackendEvent) => void): () => void;
  /** Shows the system's open dialog (files and folders); resolves with the chosen paths, [] when dismissed. */
  openDialog(): Promise<string[]>;
  /** The file-system path of a dropped file or folder ('' when it has none). */
  pathForFile(file: File): string;
}
