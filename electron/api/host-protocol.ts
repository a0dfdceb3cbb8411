// Messages between a backend host process and the process that started it.
import type { BackendEvent, EngineStatus } from './types';

export interface HostOptions {
  dataDir: string;
  modelPath: string;
  threads?: number;
}

export type ToHost =
  | { kind: 'request'; id: number; method: string; params: unknown }
  | { kind: 'shutdown' };

export type FromHost =
  | { kind: 'ready'; status: EngineStatus }
  | { kind: 'response'; id: number; result?: unknown; error?: { code: string; message: string } }
  | { kind: 'event'; event: BackendEvent }
  | { kind: 'fatal'; message: string };
