// The engine decodes per the speculative setting and times every decode for the automatic choice:
// automatic alternates on a fresh engine, the model description carries the measurement, and a
// thread-count change starts the measurement over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANSWER_REPETITION, Engine } from '../backend/engine/engine';
import { testModelPath } from './helpers';

describe('engine', () => {
  let engine: Engine;

  beforeAll(async () => {
    engine = await Engine.load(testModelPath(), 1);
  });
  afterAll(() => {
    engine.close();
  });

  it('decodes per the setting and learns the automatic choice from the decodes', async () => {
    if (engine.model.info.nPredictHeads < 2) return;  // nothing to choose without draft heads
    type Options = Parameters<typeof engine.model.generate>[1];
    const seen: Options[] = [];
    const generate = engine.model.generate.bind(engine.model);
    engine.model.generate = (state, options) => {
      seen.push(options);
      return generate(state, options);
    };
    const prompt = engine.model.tokenizeSync('The keeper of the lighthouse wrote down every ship that came in with the tide.');
    const decode = async (setting: 0 | 1 | 2) => {
      const state = engine.model.createState();
      try {
        return await engine.generate(state, { prompt, maxTokens: 96, temperature: 0, stopAtEos: false, ...ANSWER_REPETITION }, setting).result;
      } finally {
        state.close();
      }
    };
    try {
      const off = await decode(0), on = await decode(1);
      expect(seen.map((o) => o?.speculative)).toEqual([false, true]);
      expect(on.speculative.draftHeads).toBeGreaterThan(1);
      expect(Array.from(on.tokens)).toEqual(Array.from(off.tokens));
      // Both fixed settings were timed too.
      expect(engine.speculativeMeasurement).toMatchObject({ plainRuns: 1, speculativeRuns: 1, faster: null });

      for (let i = 0; i < 4; i++) await decode(2);
      expect(seen.slice(2).map((o) => o?.speculative)).toEqual([true, false, true, false]);
      const measured = engine.speculativeMeasurement;
      expect(measured).toMatchObject({ plainRuns: 3, speculativeRuns: 3 });
      expect(typeof measured.faster).toBe('boolean');
      expect(measured.faster).toBe(measured.speculativeTokensPerSecond! > 1.02 * measured.plainTokensPerSecond!);
      expect(engine.describe().speculative).toEqual(measured);
      expect((await decode(2)).speculative.draftHeads > 1).toBe(measured.faster);

      // Another thread count can change the outcome: it is measured again.
      engine.setThreads(2);
      expect(engine.speculativeMeasurement).toMatchObject({ plainRuns: 0, speculativeRuns: 0, faster: null });
    } finally {
      engine.model.generate = generate;
    }
  });
});
