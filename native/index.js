'use strict';
// Typed JS API over the native addon (build/Release/megalodon.node). Types and documentation:
// index.d.ts.

const path = require('node:path');

const native = require(path.join(__dirname, '..', 'build', 'Release', 'megalodon.node'));

const TOKENIZE_ADD_BOS = 1;
const TOKENIZE_PARSE_SPECIAL = 2;
const STATE_TSN_REFRESH = 1;

// Guards the constructors: Model and State objects come only from this module.
const kInternal = Symbol('megalodon.internal');
const kNative = Symbol('megalodon.native');

class AbortError extends Error {
  constructor(message = 'The operation was aborted', options = undefined) {
    super(message, options);
    this.name = 'AbortError';
    this.code = 'ABORT_ERR';
  }
}

function invalidArg(message, ErrorClass = TypeError) {
  const error = new ErrorClass(message);
  error.code = 'MGL_ERR_INVALID_ARG';
  return error;
}

function checkOptions(options, name = 'options') {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw invalidArg(`${name} must be an object`);
  return options;
}

function optionalBool(value, name, fallback) {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArg(`${name} must be a boolean`);
  return value;
}

function checkSignal(signal) {
  if (signal === undefined || signal === null) return null;
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' ||
      typeof signal.addEventListener !== 'function') {
    throw invalidArg('options.signal must be an AbortSignal');
  }
  return signal;
}

function abortErrorFor(signal) {
  return new AbortError('The operation was aborted', { cause: signal.reason });
}

/**
 * Runs start(cancelFlag) -> Promise with an AbortSignal wired to the native cancel flag.
 * An already-aborted signal rejects before anything starts; a cancelled run rejects with
 * AbortError once the native call has stopped.
 */
async function withSignal(signal, start) {
  signal = checkSignal(signal);
  if (signal === null) return start(null);
  if (signal.aborted) throw abortErrorFor(signal);
  const flag = new native.CancelFlag();
  const onAbort = () => flag.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await start(flag);
  } catch (error) {
    if (signal.aborted && error && error.code === 'MGL_ERR_CANCELLED') throw abortErrorFor(signal);
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

function nativeState(model, state) {
  if (!(state instanceof State)) throw invalidArg('state must be a State');
  if (state.model !== model) throw invalidArg('state belongs to another model', Error);
  return state[kNative];
}

class Model {
  #native;
  #info = null;

  /** @internal */
  constructor(token, nativeModel) {
    if (token !== kInternal) throw new TypeError('Model cannot be constructed directly: use Model.load()');
    this.#native = nativeModel;
  }

  static async load(modelPath, options) {
    const { threads, useMmap } = checkOptions(options);
    const nativeModel = await native.Model.load(modelPath, threads, useMmap);
    return new Model(kInternal, nativeModel);
  }

  get info() {
    if (this.#info === null || this.#native.closed) this.#info = Object.freeze(this.#native.info());
    return this.#info;
  }

  infoJson() {
    return JSON.parse(this.#native.infoJson());
  }

  async tokenize(text, options) {
    return this.#native.tokenize(text, tokenizeFlags(options));
  }

  tokenizeSync(text, options) {
    return this.#native.tokenizeSync(text, tokenizeFlags(options));
  }

  detokenize(tokens, options) {
    const { renderSpecial } = checkOptions(options);
    return this.#native.detokenize(tokens, optionalBool(renderSpecial, 'options.renderSpecial', false));
  }

  tokenPiece(token) {
    return this.#native.tokenPiece(token);
  }

  createState(options) {
    const { tsnRefresh } = checkOptions(options);
    const flags = optionalBool(tsnRefresh, 'options.tsnRefresh', false) ? STATE_TSN_REFRESH : 0;
    return new State(kInternal, this, this.#native.createState(flags));
  }

  async loadState(statePath) {
    return new State(kInternal, this, await this.#native.loadState(statePath));
  }

  async ingest(state, tokens, options) {
    const { onProgress, signal } = checkOptions(options);
    const handle = nativeState(this, state);
    const progress = progressCallback(onProgress);
    return withSignal(signal, (flag) => this.#native.ingest(handle, tokens, progress, flag));
  }

  async score(state, tokens, options) {
    const { onProgress, signal } = checkOptions(options);
    const handle = nativeState(this, state);
    const progress = progressCallback(onProgress);
    return withSignal(signal, (flag) => this.#native.score(handle, tokens, progress, flag));
  }

  async eval(state, tokens, options) {
    const { rows = 1, heads = this.info.nPredictHeads } = checkOptions(options);
    const flat = await this.#native.eval(nativeState(this, state), tokens, rows, heads);
    const nVocab = this.info.nVocab;
    const result = [];
    for (let r = 0; r < rows; r++) {
      const row = [];
      for (let h = 0; h < heads; h++) {
        const offset = (r * heads + h) * nVocab;
        row.push(flat.subarray(offset, offset + nVocab));
      }
      result.push(row);
    }
    return result;
  }

  generate(state, options) {
    return new Generation(this, this.#native, state, checkOptions(options));
  }

  setThreads(threads) {
    this.#native.setThreads(threads);
    this.#info = null;
  }

  close() {
    this.#native.close();
  }

  get closed() {
    return this.#native.closed;
  }
}

// Heads a speculative generation uses, head 1 included: 0 (all of the model's) up to its count.
function draftHeads(value, nPredictHeads) {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw invalidArg('options.draft must be an integer');
  if (value < 0 || value > nPredictHeads) {
    throw invalidArg(`options.draft must be between 0 (all heads) and ${nPredictHeads}, the model's ` +
      `prediction heads; got ${value}`, RangeError);
  }
  return value;
}

function tokenizeFlags(options) {
  const { addBos, parseSpecial } = checkOptions(options);
  return (optionalBool(addBos, 'options.addBos', false) ? TOKENIZE_ADD_BOS : 0) |
    (optionalBool(parseSpecial, 'options.parseSpecial', false) ? TOKENIZE_PARSE_SPECIAL : 0);
}

function progressCallback(onProgress) {
  if (onProgress === undefined || onProgress === null) return undefined;
  if (typeof onProgress !== 'function') throw invalidArg('options.onProgress must be a function');
  return (done, total, tokensPerSecond) => onProgress({ done, total, tokensPerSecond });
}

class State {
  #model;

  /** @internal */
  constructor(token, model, nativeHandle) {
    if (token !== kInternal) throw new TypeError('State cannot be constructed directly: use model.createState()');
    this.#model = model;
    Object.defineProperty(this, kNative, { value: nativeHandle });
  }

  get model() {
    return this.#model;
  }

  get position() {
    return this[kNative].position;
  }

  get sizeBytes() {
    return this[kNative].sizeBytes;
  }

  get tsnRefresh() {
    return (this[kNative].flags & STATE_TSN_REFRESH) !== 0;
  }

  get busy() {
    return this[kNative].busy;
  }

  get closed() {
    return this[kNative].closed;
  }

  clone() {
    return new State(kInternal, this.#model, this[kNative].clone());
  }

  reset() {
    this[kNative].reset();
  }

  async save(statePath) {
    await this[kNative].save(statePath);
  }

  logits(head = 0) {
    return this[kNative].logits(head);
  }

  close() {
    this[kNative].close();
  }
}

const kNoResult = Symbol('megalodon.noResult');

/**
 * A running generation: an async iterable of {token, text} plus `result`. The native job
 * starts at once and pushes tokens into a queue that the iterator drains.
 */
class Generation {
  #queue = [];
  #wake = null;
  #settled = false;
  #error = null;
  #errorReported = false;
  #final = kNoResult;
  #flag = null;
  #tokens = [];
  #text = '';

  constructor(model, nativeModel, state, options) {
    this.result = this.#start(model, nativeModel, state, options);
    // `result` is also surfaced through the iterator; never report it as unhandled.
    this.result.catch(() => {});
  }

  async #start(model, nativeModel, state, options) {
    try {
      const signal = checkSignal(options.signal);
      const handle = nativeState(model, state);
      const { prompt } = options;
      let addBos = optionalBool(options.addBos, 'options.addBos', undefined);
      if (addBos === undefined) addBos = handle.position === 0;
      const parseSpecial = optionalBool(options.parseSpecial, 'options.parseSpecial', true);
      const speculative = optionalBool(options.speculative, 'options.speculative', false);
      const draft = draftHeads(options.draft, model.info.nPredictHeads);
      const params = {
        maxTokens: options.maxTokens,
        temperature: options.temperature,
        topK: options.topK,
        topP: options.topP,
        minP: options.minP,
        repeatPenalty: options.repeatPenalty,
        repeatLastN: options.repeatLastN,
        seed: options.seed,
        stop: options.stop,
        stopAtEos: options.stopAtEos,
        speculative,
        draft,
        tokenizeFlags: (addBos ? TOKENIZE_ADD_BOS : 0) | (parseSpecial ? TOKENIZE_PARSE_SPECIAL : 0),
      };
      const outcome = await withSignal(signal, (flag) => {
        this.#flag = flag ?? new native.CancelFlag();
        return nativeModel.generate(handle, prompt, params, (token, text) => this.#push(token, text), this.#flag);
      });
      const { nTokens, stopReason, promptTokens, promptSeconds, generateSeconds, speculative: stats } = outcome;
      if (stopReason === 'cancelled' && signal !== null && signal.aborted) throw abortErrorFor(signal);
      this.#final = {
        text: this.#text,
        tokens: Int32Array.from(this.#tokens),
        nTokens,
        stopReason,
        promptTokens,
        promptSeconds,
        generateSeconds,
        tokensPerSecond: generateSeconds > 0 ? nTokens / generateSeconds : 0,
        speculative: {
          draftHeads: stats.draftHeads,
          forwardPasses: stats.forwardPasses,
          tokensPerForward: stats.tokensPerForward,
          draftedPerHead: stats.draftedPerHead,
          acceptedPerHead: stats.acceptedPerHead,
          windowsByRows: stats.windowsByRows,
        },
      };
      return this.#final;
    } catch (error) {
      this.#error = error;
      throw error;
    } finally {
      this.#settled = true;
      this.#notify();
    }
  }

  #push(token, text) {
    this.#tokens.push(token);
    this.#text += text;
    this.#queue.push({ token, text });
    this.#notify();
  }

  #notify() {
    if (this.#wake !== null) {
      const wake = this.#wake;
      this.#wake = null;
      wake();
    }
  }

  /** Stops the generation (it ends with stopReason 'cancelled'). */
  cancel() {
    if (this.#flag !== null) this.#flag.cancel();
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  async next() {
    for (;;) {
      if (this.#queue.length > 0) return { value: this.#queue.shift(), done: false };
      if (this.#settled) {
        if (this.#error !== null && !this.#errorReported) {
          this.#errorReported = true;
          throw this.#error;
        }
        return { value: this.#final === kNoResult ? undefined : this.#final, done: true };
      }
      await new Promise((resolve) => { this.#wake = resolve; });
    }
  }

  /** Called when a for-await loop exits early: cancels and waits until the state is free. */
  async return() {
    this.cancel();
    this.#queue.length = 0;
    try {
      await this.result;
    } catch {
      // The loop was left on purpose; a late failure has nothing to report to.
    }
    return { value: this.#final === kNoResult ? undefined : this.#final, done: true };
  }
}

module.exports = {
  Model,
  State,
  AbortError,
  version: native.version,
};
