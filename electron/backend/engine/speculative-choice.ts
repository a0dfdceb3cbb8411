// The automatic speculative-decoding setting: it learns from the answers and summaries themselves
// whether drafting with the model's heads decodes faster on this machine. Greedy output is the
// same either way (and sampling keeps its distribution), so trying both costs only speed.
import type { SpeculativeMeasurement } from '../../api/types';

/** Settings value: 0 plain, 1 speculative, 2 automatic. */
export type SpeculativeSetting = 0 | 1 | 2;

/** The stored setting as a SpeculativeSetting (anything else is off). */
export function speculativeSetting(value: number): SpeculativeSetting {
  return value === 1 || value === 2 ? value : 0;
}

interface Tally {
  chosen: number;   // automatic choices of this way, finished or not
  runs: number;     // finished decodes long enough to time
  tokens: number;
  seconds: number;
}

/** Each way needs this much before they are compared; until then the automatic choice alternates. */
const MIN_RUNS = 3;
const MIN_TOKENS = 256;
/** Decodes shorter than this are too short to time. */
const MIN_TIMED_TOKENS = 8;
/** Speculative decoding must be this much faster to be chosen (a tie goes to plain). */
const MARGIN = 1.02;
/** Once settled, every EXPLORE_EVERY-th automatic choice takes the other way, to keep both current. */
const EXPLORE_EVERY = 8;

const empty = (): Tally => ({ chosen: 0, runs: 0, tokens: 0, seconds: 0 });
const rate = (t: Tally) => (t.seconds > 0 ? t.tokens / t.seconds : null);
const enough = (t: Tally) => t.runs >= MIN_RUNS && t.tokens >= MIN_TOKENS;

export class SpeculativeChooser {
  private plain = empty();
  private speculative = empty();
  private settledChoices = 0;

  /** Whether the next automatic decode drafts with the heads. */
  choose(): boolean {
    let speculative: boolean;
    if (!this.settled) {
      speculative = this.speculative.chosen <= this.plain.chosen;  // alternate, speculative first
    } else {
      const faster = this.faster!;
      speculative = ++this.settledChoices % EXPLORE_EVERY === 0 ? !faster : faster;
    }
    (speculative ? this.speculative : this.plain).chosen++;
    return speculative;
  }

  /** A finished decode (any setting): `nTokens` generated in `seconds` of decoding. */
  record(speculative: boolean, nTokens: number, seconds: number): void {
    if (nTokens < MIN_TIMED_TOKENS || !(seconds > 0)) return;
    const tally = speculative ? this.speculative : this.plain;
    tally.runs++;
    tally.tokens += nTokens;
    tally.seconds += seconds;
  }

  private get settled(): boolean {
    return enough(this.plain) && enough(this.speculative);
  }

  private get faster(): boolean | null {
    if (!this.settled) return null;
    return rate(this.speculative)! > MARGIN * rate(this.plain)!;
  }

  measurement(): SpeculativeMeasurement {
    return {
      plainTokensPerSecond: rate(this.plain), plainRuns: this.plain.runs,
      speculativeTokensPerSecond: rate(this.speculative), speculativeRuns: this.speculative.runs,
      faster: this.faster, exploreEvery: EXPLORE_EVERY,
    };
  }
}
