// The engine's measurement of speculative decoding: it decodes as answers do, once per thread count,
// and the model description carries its result.
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

  it('probes speculative decoding with the answers\' repetition penalty, greedily, once', async () => {
    if (engine.model.info.nPredictHeads < 2) return;  // nothing to measure without draft heads
    type Options = Parameters<typeof engine.model.generate>[1];
    const seen: Options[] = [];
    const generate = engine.model.generate.bind(engine.model);
    engine.model.generate = (state, options) => {
      seen.push(options);
      return generate(state, options);
    };
    try {
      const helps = await engine.speculativeHelps();
      expect(typeof helps).toBe('boolean');
      expect(seen.length).toBe(6);
      expect(seen.filter((o) => o?.speculative).length).toBe(3);
      for (const o of seen) {
        expect(o).toMatchObject({ temperature: 0, ...ANSWER_REPETITION });
        expect(o?.maxTokens).toBeGreaterThanOrEqual(64);
      }
      expect(await engine.speculativeHelps()).toBe(helps);
      expect(seen.length).toBe(6);  // measured once per thread count

      const measured = engine.speculativeMeasurement!;
      expect(measured.plainTokensPerSecond).toBeGreaterThan(0);
      expect(measured.speculativeTokensPerSecond).toBeGreaterThan(0);
      expect(measured.faster).toBe(helps);
      expect(measured.faster).toBe(measured.speculativeTokensPerSecond > 1.05 * measured.plainTokensPerSecond);
      expect(engine.describe().speculative).toEqual(measured);

      // Another thread count can change the outcome: it is measured again.
      engine.setThreads(2);
      expect(engine.speculativeMeasurement).toBeNull();
      expect(engine.describe().speculative).toBeNull();
      await engine.speculativeHelps();
      expect(seen.length).toBe(12);
      expect(engine.speculativeMeasurement).not.toBeNull();
    } finally {
      engine.model.generate = generate;
    }
  });
});
