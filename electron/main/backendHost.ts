// The backend in its own process (an Electron utilityProcess running the backend host): routes
// requests to it by id, passes its events on, and restarts it when it dies. Pending requests
// then fail with ENGINE_RESTARTED; the new process resumes interrupted jobs by itself.
import type { Method, ResultTypes } from '../api/requests';
import type { BackendEvent, EngineStatus } from '../api/types';
import type { FromHost, HostOptions, ToHost } from '../api/host-protocol';

/** What this module needs of a child process (an Electron UtilityProcess fits). */
export interface HostProcess {
  readonly pid?: number;
  postMessage(message: ToHost): void;
  on(event: 'message', listener: (message: FromHost) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  kill(): boolean;
}

export type SpawnHost = (options: HostOptions) => HostProcess;

export class HostError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'HostError';
  }
}

const MAX_QUICK_RESTARTS = 5;
const QUICK_RESTART_MS = 10_000;
const SHUTDOWN_MS = 10_000;

const idle = (state: EngineStatus['state'], message?: string): EngineStatus =>
  ({ state, model: null, activeJob: null, queue: [], rssBytes: 0, dataDir: null, ...(message ? { message } : {}) });

export class BackendHost {
  private child: HostProcess | null = null;
  private ready: Promise<void> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly listeners = new Set<(event: BackendEvent) => void>();
  private restarts: number[] = [];
  private fatal: string | null = null;
  private closing = false;
  status: EngineStatus = idle('starting');

  constructor(private readonly spawn: SpawnHost, private options: HostOptions, private readonly now = () => Date.now()) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  onEvent(listener: (event: BackendEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: BackendEvent): void {
    if (event.type === 'engine') this.status = event.status;
    for (const listener of this.listeners) listener(event);
  }

  start(): Promise<void> {
    if (this.ready) return this.ready;
    this.fatal = null;
    const child = this.spawn(this.options);
    this.child = child;
    this.ready = new Promise<void>((resolve, reject) => {
      child.on('message', (message: FromHost) => {
        if (this.child !== child) return;
        switch (message.kind) {
          case 'ready':
            this.emit({ type: 'engine', status: message.status });
            resolve();
            break;
          case 'fatal':
            this.fatal = message.message;
            this.emit({ type: 'engine', status: idle('error', message.message) });
            reject(new HostError('ENGINE_FAILED', message.message));
            break;
          case 'event':
            this.emit(message.event);
            break;
          case 'response': {
            const waiter = this.pending.get(message.id);
            if (!waiter) return;
            this.pending.delete(message.id);
            if (message.error) waiter.reject(new HostError(message.error.code, message.error.message));
            else waiter.resolve(message.result);
            break;
          }
        }
      });
      child.on('exit', (code: number) => {
        reject(new HostError('ENGINE_FAILED', this.fatal ?? `the backend exited (code ${code}) before it was ready`));
        this.onExit(child, code);
      });
    });
    // A start that fails is reported through the status; callers see it on their next request.
    this.ready.catch(() => undefined);
    return this.ready;
  }

  private onExit(child: HostProcess, code: number): void {
    if (this.child !== child) return;
    this.child = null;
    this.ready = null;
    for (const waiter of this.pending.values()) {
      waiter.reject(new HostError('ENGINE_RESTARTED', `the backend stopped (exit ${code}) during the request`));
    }
    this.pending.clear();
    if (this.closing || this.fatal) return;
    const now = this.now();
    this.restarts = [...this.restarts.filter((t) => now - t < QUICK_RESTART_MS), now];
    if (this.restarts.length > MAX_QUICK_RESTARTS) {
      this.emit({ type: 'engine', status: idle('error', 'the backend keeps stopping; it is not restarted again') });
      return;
    }
    this.emit({ type: 'engine', status: idle('restarting', `the backend stopped (exit ${code}); restarting`) });
    void this.start();
  }

  async request<M extends Method>(method: M, params: unknown): Promise<ResultTypes[M]> {
    if (this.closing) throw new HostError('CLOSED', 'Folio is shutting down');
    if (!this.ready) {
      if (this.fatal) throw new HostError('ENGINE_FAILED', this.fatal);
      void this.start();
    }
    await this.ready;
    const child = this.child;
    if (!child) throw new HostError('ENGINE_RESTARTED', 'the backend is restarting');
    const id = this.nextId++;
    return new Promise<ResultTypes[M]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.postMessage({ kind: 'request', id, method, params });
    });
  }

  /** Stops the current process and starts one with new options (another model). */
  async restart(options: HostOptions): Promise<void> {
    this.options = options;
    this.fatal = null;
    await this.stop();
    this.closing = false;
    this.restarts = [];
    this.emit({ type: 'engine', status: idle('starting') });
    await this.start().catch(() => undefined);
  }

  /** Asks the backend to finish (it saves what it is doing) and waits, killing it after a while. */
  async stop(): Promise<void> {
    this.closing = true;
    const child = this.child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        child.kill();
        resolve();
      }, SHUTDOWN_MS);
      child.on('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.postMessage({ kind: 'shutdown' });
    });
  }
}
