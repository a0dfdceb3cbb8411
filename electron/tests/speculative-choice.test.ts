// The automatic speculative choice: it alternates until both ways are timed, then takes the faster
// (a tie goes to plain), keeps trying the other way now and then, and ignores decodes too short to time.
import { describe, expect, it } from 'vitest';
import { SpeculativeChooser, speculativeSetting } from '../backend/engine/speculative-choice';

/** Runs n automatic decodes of 100 tokens, speculative at `specRate` tokens/s and plain at `plainRate`. */
function run(chooser: SpeculativeChooser, n: number, specRate: number, plainRate: number): boolean[] {
  const choices: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const speculative = chooser.choose();
    choices.push(speculative);
    chooser.record(speculative, 100, 100 / (speculative ? specRate : plainRate));
  }
  return choices;
}

describe('speculative choice', () => {
  it('alternates, speculative first, until each way has 3 timed runs of 256 tokens', () => {
    const chooser = new SpeculativeChooser();
    expect(chooser.measurement()).toMatchObject({ faster: null, plainRuns: 0, speculativeRuns: 0, plainTokensPerSecond: null });
    expect(run(chooser, 6, 2000, 1000)).toEqual([true, false, true, false, true, false]);
    expect(chooser.measurement()).toMatchObject({ faster: true, plainRuns: 3, speculativeRuns: 3 });
    expect(chooser.measurement().speculativeTokensPerSecond).toBeCloseTo(2000, 6);
    expect(chooser.measurement().plainTokensPerSecond).toBeCloseTo(1000, 6);
  });

  it('then takes the faster way, and every 8th choice the other one', () => {
    const faster = new SpeculativeChooser();
    run(faster, 6, 2000, 1000);
    const next = run(faster, 16, 2000, 1000);
    expect(next.filter((s) => !s).length).toBe(2);
    expect(next[7]).toBe(false);
    expect(next[15]).toBe(false);

    const slower = new SpeculativeChooser();
    run(slower, 6, 900, 1000);
    expect(slower.measurement().faster).toBe(false);
    expect(run(slower, 8, 900, 1000)).toEqual([false, false, false, false, false, false, false, true]);
  });

  it('a near tie goes to plain decoding', () => {
    const chooser = new SpeculativeChooser();
    run(chooser, 6, 1010, 1000);
    expect(chooser.measurement().faster).toBe(false);
  });

  it('changes its mind when the measurements do', () => {
    const chooser = new SpeculativeChooser();
    run(chooser, 6, 1500, 1000);
    expect(chooser.measurement().faster).toBe(true);
    run(chooser, 40, 500, 1000);  // the speculative runs it still makes (and explores) are slow now
    expect(chooser.measurement().faster).toBe(false);
  });

  it('ignores decodes too short to time, and choices still running count for alternation', () => {
    const chooser = new SpeculativeChooser();
    chooser.record(true, 3, 0.001);
    chooser.record(false, 100, 0);
    expect(chooser.measurement()).toMatchObject({ plainRuns: 0, speculativeRuns: 0 });
    // Two requests choose before either finishes: they take different ways.
    expect([chooser.choose(), chooser.choose()]).toEqual([true, false]);
  });

  it('reads the stored setting', () => {
    expect([0, 1, 2, 3, -1, 1.5].map(speculativeSetting)).toEqual([0, 1, 2, 0, 0, 0]);
  });
});
