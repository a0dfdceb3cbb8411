// Typed API of the MEGALODON runtime for Node and Electron (N-API addon, no rebuild needed).
//
// Errors: every failure is an Error whose `code` names it. Runtime failures use the C API's
// status names ("MGL_ERR_IO", "MGL_ERR_FORMAT", "MGL_ERR_UNSUPPORTED", "MGL_ERR_INVALID_ARG",
// "MGL_ERR_OUT_OF_MEMORY", "MGL_ERR_MISMATCH", "MGL_ERR_INTERNAL") with the runtime's message.
// The binding adds "MGL_ERR_INVALID_ARG" (TypeError / RangeError) for bad arguments,
// "MGL_ERR_BUSY" (a state used by two calls at once) and "MGL_ERR_CLOSED" (use after close()).
// A call cancelled through an AbortSignal rejects with an AbortError (code "ABORT_ERR").
//
// Long calls run on a worker thread and never block the event loop. A model may run several
// states at once (the runtime serialises the model work); a state serves one call at a time.

/** A list of token ids: an Int32Array, or an array of integers. */
export type Tokens = Int32Array | readonly number[];

/** Runtime build description, e.g. "megalodon 0.1.0 cpu avx2+fma". */
export declare const version: string;

/** Error of a call cancelled through an AbortSignal. */
export declare class AbortError extends Error {
  readonly name: 'AbortError';
  readonly code: 'ABORT_ERR';
  /** The signal's reason. */
  readonly cause: unknown;
}

/** Error raised by the runtime or the binding. */
export interface MegalodonError extends Error {
  code:
    | 'MGL_ERR_IO'
    | 'MGL_ERR_FORMAT'
    | 'MGL_ERR_UNSUPPORTED'
    | 'MGL_ERR_INVALID_ARG'
    | 'MGL_ERR_OUT_OF_MEMORY'
    | 'MGL_ERR_CANCELLED'
    | 'MGL_ERR_MISMATCH'
    | 'MGL_ERR_INTERNAL'
    | 'MGL_ERR_BUSY'
    | 'MGL_ERR_CLOSED';
}

export interface LoadOptions {
  /** Worker threads of the model; 0 or absent: every hardware thread. */
  threads?: number;
  /** Memory-map the file (default true); false reads it into memory. */
  useMmap?: boolean;
}

/** Hyper-parameters and sizes of a loaded model. */
export interface ModelInfo {
  /** MEGALODON blocks, the head-1 block included. */
  readonly nLayers: number;
  /** Model width D. */
  readonly dModel: number;
  /** CEMA states per channel N. */
  readonly cemaNdim: number;
  /** Attention heads H. */
  readonly nAttnHeads: number;
  /** Shared query/key width Z. */
  readonly zDim: number;
  /** Value width E. */
  readonly valueDim: number;
  /** Feed-forward width F. */
  readonly ffnDim: number;
  /** Attention chunk C: ingest works and checkpoints in chunks of this many tokens. */
  readonly chunkSize: number;
  /** TimestepNorm groups G. */
  readonly normGroups: number;
  readonly nVocab: number;
  /** Prediction heads, head 1 (next token) included; at least 1. */
  readonly nPredictHeads: number;
  /** Hidden width of heads 2..n (0 if none). */
  readonly mtpHiddenDim: number;
  readonly swiglu: boolean;
  readonly tiedEmbedding: boolean;
  /** -1 if the model has none. */
  readonly bosToken: number;
  /** -1 if the model has none. */
  readonly eosToken: number;
  readonly nThreads: number;
  /** All parameters, extra heads included. */
  readonly nParams: number;
  /** Size of a saved state at a chunk boundary (independent of the position). */
  readonly stateBytes: number;
  /** Identifies weights and config (16 hex digits); state files carry it. */
  readonly fingerprint: string;
}

export interface TokenizeOptions {
  /** Prepend BOS when the model has one (default false). */
  addBos?: boolean;
  /** Recognise special tokens such as "</s>" in the text (default false). */
  parseSpecial?: boolean;
}

export interface DetokenizeOptions {
  /** Render special tokens (BOS, EOS, ...) as their text instead of nothing (default false). */
  renderSpecial?: boolean;
}

export interface StateOptions {
  /** Reference-evaluation TimestepNorm refresh mode (default false). */
  tsnRefresh?: boolean;
}

export interface Progress {
  /** Tokens processed so far (a chunk multiple until the last chunk). */
  done: number;
  total: number;
  /** Average since the call started. */
  tokensPerSecond: number;
}

export interface RunOptions {
  /** Called on the JS thread after every chunk. If it throws, the call stops and rejects with that exception. */
  onProgress?: (progress: Progress) => void;
  /**
   * Cancels between chunks; the call rejects with an AbortError and the state keeps every
   * token up to the last finished chunk (see State.position).
   */
  signal?: AbortSignal;
}

export interface IngestResult {
  tokens: number;
  seconds: number;
}

export interface ScoreResult {
  /** Tokens fed. */
  tokens: number;
  /** Tokens scored (tokens - 1). */
  scored: number;
  /** Sum of negative log-likelihoods, in nats. */
  sumNll: number;
  meanNll: number;
  perplexity: number;
  seconds: number;
}

export interface EvalOptions {
  /** Logit rows for the last `rows` positions (default 1, at most tokens.length). */
  rows?: number;
  /** Prediction heads to return, 1..nPredictHeads (default all). */
  heads?: number;
}

export interface GenerateOptions {
  /**
   * Text or tokens fed before sampling. May be omitted only when the state holds logits
   * (after eval or generate). A string is tokenized with `addBos` and `parseSpecial`.
   */
  prompt?: string | Tokens;
  /** Default: true when the state is at position 0. */
  addBos?: boolean;
  /** Default true: special tokens written in a string prompt are recognised. */
  parseSpecial?: boolean;
  maxTokens?: number;
  /** 0: greedy. */
  temperature?: number;
  /** 0: off. */
  topK?: number;
  /** 1: off. */
  topP?: number;
  /** 0: off. */
  minP?: number;
  /** 1: off. */
  repeatPenalty?: number;
  /** Window of the penalty over prompt and output tokens. */
  repeatLastN?: number;
  /** Sampling seed (a safe integer or a bigint up to 2^64-1). */
  seed?: number | bigint;
  /** Generation ends before any of these strings; they are not part of the output. */
  stop?: readonly string[];
  /** End at the model's EOS token (default true). */
  stopAtEos?: boolean;
  /**
   * Self-speculative decoding with the model's multi-token heads (default false): heads 2..k
   * draft the tokens after the next one and one forward pass verifies them. Greedy output is
   * identical to plain decoding; with sampling the output follows the same distribution (not the
   * same tokens for a seed). A model without extra heads decodes plainly.
   */
  speculative?: boolean;
  /**
   * Heads used per speculative step, head 1 included (a step verifies the next token plus
   * draft - 1 drafted ones): 1..nPredictHeads, or 0 / absent for up to all of them with, in
   * greedy decoding, the length of each step chosen from the speeds measured during the call
   * (a length of 1 is a plain step). A RangeError above nPredictHeads.
   */
  draft?: number;
  /** Stops the generation; iteration and `result` then reject with an AbortError. */
  signal?: AbortSignal;
}

export interface GeneratedToken {
  token: number;
  /** Newly final UTF-8 text; empty while a character or a possible stop string is pending. */
  text: string;
}

export type StopReason = 'max_tokens' | 'eos' | 'stop_string' | 'cancelled';

/** How the decode loop ran (plain decoding: draftHeads 1, one forward pass per token). */
export interface SpeculativeStats {
  /** Heads used per step, head 1 included. */
  draftHeads: number;
  /** Forward passes of the decode loop (the prompt's excluded). */
  forwardPasses: number;
  /** nTokens / forwardPasses. */
  tokensPerForward: number;
  /** Per head 2..draftHeads: drafts put into a verification window. */
  draftedPerHead: number[];
  /**
   * Per head 2..draftHeads: drafts accepted (only when every draft before it in its window was
   * accepted too, so acceptedPerHead[i] / draftedPerHead[i] is the cumulative acceptance).
   */
  acceptedPerHead: number[];
  /** Forward passes by rows: windowsByRows[r - 1] verified r - 1 drafts (r = 1: a plain step). */
  windowsByRows: number[];
}

export interface GenerateResult {
  /** The whole output text (stop string excluded). */
  text: string;
  tokens: Int32Array;
  nTokens: number;
  /** 'cancelled' when the loop was left early or cancel() was called. */
  stopReason: StopReason;
  promptTokens: number;
  promptSeconds: number;
  generateSeconds: number;
  tokensPerSecond: number;
  speculative: SpeculativeStats;
}

/**
 * A running generation. It starts when model.generate() returns; iterate it for tokens as
 * they come. Leaving a for-await loop early cancels the generation and waits until the state
 * is free again. The iterator's return value and `result` hold the final result.
 */
export interface Generation extends AsyncIterableIterator<GeneratedToken> {
  readonly result: Promise<GenerateResult>;
  /** Stops the generation; it ends with stopReason 'cancelled'. */
  cancel(): void;
  next(): Promise<IteratorResult<GeneratedToken, GenerateResult | undefined>>;
  return(): Promise<IteratorResult<GeneratedToken, GenerateResult | undefined>>;
}

export declare class Model {
  private constructor();
  /** Loads a GGUF model file (rejects with MGL_ERR_IO, MGL_ERR_FORMAT, MGL_ERR_UNSUPPORTED). */
  static load(path: string, options?: LoadOptions): Promise<Model>;
  readonly info: ModelInfo;
  /** True after close(). */
  readonly closed: boolean;
  /** Config, parameter counts, tensor types, tokenizer and fingerprint as one object. */
  infoJson(): Record<string, unknown>;
  /** Tokenizes on a worker thread (a 10 MB text takes seconds). Bytes are taken as UTF-8. */
  tokenize(text: string | Uint8Array, options?: TokenizeOptions): Promise<Int32Array>;
  /** Tokenizes on the calling thread: for short texts. */
  tokenizeSync(text: string | Uint8Array, options?: TokenizeOptions): Int32Array;
  detokenize(tokens: Tokens, options?: DetokenizeOptions): string;
  /** The stored piece of one token, e.g. "Ġthe". */
  tokenPiece(token: number): string;
  /** A fresh state at position 0. */
  createState(options?: StateOptions): State;
  /** Loads a state file of this model (rejects with MGL_ERR_MISMATCH for another model's state). */
  loadState(path: string): Promise<State>;
  /** Streams tokens through the model into the state, without logits. */
  ingest(state: State, tokens: Tokens, options?: RunOptions): Promise<IngestResult>;
  /** Mean negative log-likelihood of tokens[1..] given the state and the tokens before each. */
  score(state: State, tokens: Tokens, options?: RunOptions): Promise<ScoreResult>;
  /** Consumes tokens; returns logits[row][head] (Float32Array of nVocab) for the last rows. */
  eval(state: State, tokens: Tokens, options?: EvalOptions): Promise<Float32Array[][]>;
  /** Feeds the prompt, then samples; every generated token is consumed into the state. */
  generate(state: State, options?: GenerateOptions): Generation;
  /** Changes the worker thread count (0: every hardware thread); MGL_ERR_BUSY while a call runs the model. */
  setThreads(threads: number): void;
  /**
   * Frees the model and its states (once running calls finish). Later calls throw
   * MGL_ERR_CLOSED. Idempotent.
   */
  close(): void;
}

/** Everything that persists between calls for one sequence. Keeps its model alive. */
export declare class State {
  private constructor();
  readonly model: Model;
  /** Tokens consumed so far. */
  readonly position: number;
  /** Bytes save() would write now. */
  readonly sizeBytes: number;
  readonly tsnRefresh: boolean;
  /** True while a call uses the state. */
  readonly busy: boolean;
  /** True after close() (of the state or its model). */
  readonly closed: boolean;
  /** An independent copy (fork) in memory. */
  clone(): State;
  /** Back to position 0. */
  reset(): void;
  /** Writes the state file atomically (temporary file, fsync, rename). */
  save(path: string): Promise<void>;
  /** Logits of the last position for one head (0 = next token), or null if none are available. */
  logits(head?: number): Float32Array | null;
  /** Frees the native state now instead of at garbage collection. */
  close(): void;
}
