// The model, loaded once per backend process, and a lock that serialises compute on it: an
// ingest job holds it for one stretch between snapshots, so questions are answered in between.
import fs from 'node:fs';
import path from 'node:path';
import type { ModelDescription, SpeculativeMeasurement } from '../../api/types';
import type * as Native from '../../../native/index';
import { SpeculativeChooser, type SpeculativeSetting } from './speculative-choice';

type NativeModule = typeof Native;
export type Model = Native.Model;
export type State = Native.State;
export type Generation = Native.Generation;
type GenerateOptions = NonNullable<Parameters<Model['generate']>[1]>;

/** The repository (or packaged app) root: the folder holding native/index.js. */
export function appRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 8; i++) {
    if (fs.existsSync(path.join(dir, 'native', 'index.js')) && fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find the native runtime (native/index.js) above ${__dirname}`);
}

let nativeModule: NativeModule | null = null;
export function runtime(): NativeModule {
  if (!nativeModule) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    nativeModule = require(path.join(appRoot(), 'native', 'index.js')) as NativeModule;
  }
  return nativeModule;
}

export function defaultModelPath(): string {
  return path.join(appRoot(), 'models', 'default', 'folio-default.gguf');
}

/**
 * The repetition penalty of answers and summaries: a small model loops easily, and a firm penalty
 * keeps its text readable. It also changes which drafts are accepted, which is why the automatic
 * speculative setting measures the answers themselves.
 */
export const ANSWER_REPETITION = { repeatPenalty: 1.3, repeatLastN: 128 } as const;

/** A FIFO mutex: `run(fn)` waits for earlier holders, then runs fn. */
export class ComputeLock {
  private tail: Promise<void> = Promise.resolve();
  private holders = 0;

  get busy(): boolean {
    return this.holders > 0;
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(async () => {
      this.holders++;
      try {
        return await fn();
      } finally {
        this.holders--;
      }
    });
    this.tail = result.then(() => undefined, () => undefined);
    return result;
  }
}

export class Engine {
  readonly lock = new ComputeLock();

  private constructor(readonly model: Model, readonly modelPath: string) {}

  static async load(modelPath: string, threads = 0): Promise<Engine> {
    if (!fs.existsSync(modelPath)) {
      throw new Error(`model file not found: ${modelPath}`);
    }
    const model = await runtime().Model.load(modelPath, threads > 0 ? { threads } : {});
    return new Engine(model, modelPath);
  }

  get fingerprint(): string {
    return this.model.info.fingerprint;
  }

  /** Token id that starts every document stream (BOS, or end-of-text for byte-level BPE). */
  get documentStartToken(): number {
    const { bosToken, eosToken } = this.model.info;
    return bosToken >= 0 ? bosToken : eosToken;
  }

  describe(): ModelDescription {
    const info = this.model.info;
    const json = this.model.infoJson() as { general?: { name?: string } ; name?: string };
    return {
      path: this.modelPath,
      name: json.general?.name ?? json.name ?? path.basename(this.modelPath),
      parameters: info.nParams,
      predictionHeads: info.nPredictHeads,
      stateBytes: info.stateBytes,
      vocabulary: info.nVocab,
      chunkSize: info.chunkSize,
      fingerprint: info.fingerprint,
      backend: 'cpu',
      threads: info.nThreads,
      speculative: info.nPredictHeads >= 2 ? this.chooser.measurement() : null,
    };
  }

  private chooser = new SpeculativeChooser();

  /**
   * A generation with speculative decoding per the setting: off, on, or automatic (the chooser
   * decides from how fast earlier answers and summaries decoded each way). Every finished
   * generation's speed is recorded for the automatic choice.
   */
  generate(state: State, options: Omit<GenerateOptions, 'speculative'>, setting: SpeculativeSetting): Generation {
    const heads = this.model.info.nPredictHeads >= 2;
    const speculative = heads && (setting === 1 || (setting === 2 && this.chooser.choose()));
    const chooser = this.chooser;  // a thread-count change while it runs starts a new measurement without it
    const generation = this.model.generate(state, { ...options, speculative });
    generation.result.then((r) => {
      if (heads && r.stopReason !== 'cancelled') chooser.record(speculative, r.nTokens, r.generateSeconds);
    }, () => undefined);
    return generation;
  }

  /** How fast answers and summaries decoded each way with this thread count. */
  get speculativeMeasurement(): SpeculativeMeasurement {
    return this.chooser.measurement();
  }

  /** Worker threads (0: all); speculative decoding's gain depends on them, so it is measured anew. */
  setThreads(threads: number): void {
    this.model.setThreads(threads > 0 ? threads : 0);
    this.chooser = new SpeculativeChooser();
  }

  close(): void {
    this.model.close();
  }
}
