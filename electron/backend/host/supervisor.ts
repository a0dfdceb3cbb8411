// Starts the backend host as a child process, routes requests to it, and restarts it when it
// dies (a crash in native code, out of memory): pending requests fail with ENGINE_RESTARTED and
// the new process marks the interrupted jobs and resumes them from their last snapshots.
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { appRoot } from '../engine/engine';
import { ApiError, type Method, type ResultTypes } from '../../api/requests';
import type { BackendEvent, EngineStatus } from '../../api/types';
import type { FromHost, HostOptions, ToHost } from '../../api/host-protocol';

const MAX_QUICK_RESTARTS = 5;

/** The compiled host entry (when this module runs from TypeScript sources, as in tests, the build's copy). */
function hostEntry(): string {
  const beside = path.join(__dirname, 'main.js');
  if (fs.existsSync(beside)) return beside;
  const built = path.join(appRoot(), 'out', 'electron', 'backend', 'host', 'main.js');
  if (fs.existsSync(built)) return built;
  throw new Error(`the backend host is not built (${built}); run npm run build`);
}
const QUICK_RESTART_MS = 10_000;

export class BackendProcess {
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly events = new EventEmitter();
  private ready: Promise<EngineStatus> | null = null;
  private closing = false;
  private restarts: number[] = [];
  private fatal: string | null = null;    // the backend could not start: restarting would not help
  restartCount = 0;

  constructor(private readonly options: HostOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  onEvent(listener: (event: BackendEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  start(): Promise<EngineStatus> {
    if (this.ready) return this.ready;
    const entry = hostEntry();
    const child = fork(entry, [JSON.stringify(this.options)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child = child;
    this.ready = new Promise<EngineStatus>((resolve, reject) => {
      child.on('message', (raw) => {
        const message = raw as FromHost;
        if (message.kind === 'ready') resolve(message.status);
        else if (message.kind === 'fatal') {
          this.fatal = message.message;
          reject(new ApiError('ENGINE_FAILED', message.message));
        }
        else if (message.kind === 'event') this.events.emit('event', message.event);
        else if (message.kind === 'response') {
          const waiter = this.pending.get(message.id);
          if (!waiter) return;
          this.pending.delete(message.id);
          if (message.error) waiter.reject(new ApiError(message.error.code, message.error.message));
          else waiter.resolve(message.result);
        }
      });
      child.on('exit', (code, signal) => {
        reject(new ApiError('ENGINE_FAILED', `the backend exited (${signal ?? code}) before it was ready`));
        this.onExit(child, code, signal);
      });
    });
    return this.ready;
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    this.ready = null;
    for (const waiter of this.pending.values()) {
      waiter.reject(new ApiError('ENGINE_RESTARTED', `the backend stopped (${signal ?? `exit ${code}`}) during the request`));
    }
    this.pending.clear();
    if (this.closing || this.fatal) return;
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < QUICK_RESTART_MS);
    this.restarts.push(now);
    const status: EngineStatus = { state: 'restarting', model: null, activeJob: null, queue: [], rssBytes: 0, dataDir: this.options.dataDir,
      message: `the backend stopped (${signal ?? `exit ${code}`}); restarting` };
    if (this.restarts.length > MAX_QUICK_RESTARTS) {
      this.events.emit('event', { type: 'engine', status: { ...status, state: 'error', message: 'the backend keeps crashing; not restarting' } });
      return;
    }
    this.events.emit('event', { type: 'engine', status });
    this.restartCount++;
    this.start().then(
      (ready) => this.events.emit('event', { type: 'engine', status: ready }),
      (error) => this.events.emit('event', { type: 'engine', status: { ...status, state: 'error', message: String(error.message) } }),
    );
  }

  async request<M extends Method>(method: M, params: unknown): Promise<ResultTypes[M]> {
    await this.start();
    const child = this.child;
    if (!child) throw new ApiError('ENGINE_RESTARTED', 'the backend is restarting');
    const id = this.nextId++;
    return new Promise<ResultTypes[M]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ kind: 'request', id, method, params } satisfies ToHost);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    const child = this.child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.send({ kind: 'shutdown' } satisfies ToHost);
    });
  }
}
