// The model, loaded once per backend process, and a lock that serialises compute on it: an
// ingest job holds it for one stretch between snapshots, so questions are answered in between.
import fs from 'node:fs';
import path from 'node:path';
import type { ModelDescription, SpeculativeMeasurement } from '../../api/types';
import type * as Native from '../../../native/index';

type NativeModule = typeof Native;
export type Model = Native.Model;
export type State = Native.State;
export type Generation = Native.Generation;

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
 * keeps its text readable. The speculative-decoding probe decodes with it too, since the penalty
 * changes which drafts are accepted.
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
      speculative: this.speculativeMeasured,
    };
  }

  private speculativeProbe: Promise<SpeculativeMeasurement | null> | null = null;
  private speculativeMeasured: SpeculativeMeasurement | null = null;

  /**
   * Whether speculative decoding is faster than plain decoding with this model on this machine,
   * for text decoded as answers are (greedy, with their repetition penalty): measured once per
   * thread count, a greedy continuation each way three times in turn, best of three (the output is
   * the same). Small models on a CPU gain little, and with the penalty often nothing; large ones gain.
   */
  async speculativeHelps(): Promise<boolean> {
    if (this.model.info.nPredictHeads < 2) return false;
    this.speculativeProbe ??= this.lock.run(async () => {
      const prompt = this.model.tokenizeSync(
        'The reader opened the book at the first chapter and began to read about the harbor, the ships ' +
        'that came in with the tide, and the keeper of the lighthouse who wrote down every one of them.');
      const rate = async (speculative: boolean) => {
        const state = this.model.createState();
        try {
          const options = { prompt, maxTokens: 128, temperature: 0, stopAtEos: false, speculative, ...ANSWER_REPETITION };
          return (await this.model.generate(state, options).result).tokensPerSecond;
        } finally {
          state.close();
        }
      };
      let plain = 0, speculative = 0;
      for (let i = 0; i < 3; i++) {
        plain = Math.max(plain, await rate(false));
        speculative = Math.max(speculative, await rate(true));
      }
      const measured = { plainTokensPerSecond: plain, speculativeTokensPerSecond: speculative,
        faster: speculative > plain * 1.05 };
      return measured;
    }).catch(() => null);
    const probe = this.speculativeProbe;
    const measured = await probe;
    // A thread-count change while it ran asks for a new measurement; this one is then not kept.
    if (this.speculativeProbe === probe) this.speculativeMeasured = measured;
    return measured?.faster ?? false;
  }

  /** The last speculative-vs-plain measurement of speculativeHelps(), or null before one. */
  get speculativeMeasurement(): SpeculativeMeasurement | null {
    return this.speculativeMeasured;
  }

  /** Worker threads (0: all); speculative decoding's gain depends on them, so it is measured anew. */
  setThreads(threads: number): void {
    this.model.setThreads(threads > 0 ? threads : 0);
    this.speculativeProbe = null;
    this.speculativeMeasured = null;
  }

  close(): void {
    this.model.close();
  }
}
