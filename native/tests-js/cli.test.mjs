// The megalodon command line tool: every command with --json, and its error handling.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import { greedy, makeModel, megalodon, runCli, runCliJson, sampleText, tempDir, TINY } from './fixtures.mjs';

const { Model } = megalodon;

describe('megalodon CLI', () => {
  let dir;
  let modelPath;
  let docPath;
  let model;

  before(async () => {
    dir = tempDir();
    modelPath = makeModel(dir, 'tiny.gguf', TINY);
    docPath = path.join(dir, 'doc.txt');
    fs.writeFileSync(docPath, sampleText(600));
    model = await Model.load(modelPath, { threads: 1 });
  });

  test('info prints the runtime JSON, pretty', () => {
    const result = runCli(['info', modelPath]);
    assert.equal(result.status, 0, result.stderr);
    assert.ok(result.stdout.split('\n').length > 5, 'indented over several lines');
    const info = JSON.parse(result.stdout);
    assert.deepEqual(info, model.infoJson());
  });

  test('ingest saves a state that the addon loads and continues identically', async () => {
    const statePath = path.join(dir, 'doc.state');
    const out = runCliJson(['ingest', modelPath, docPath, '--save', statePath, '--threads', '2']);
    const tokens = await model.tokenize(fs.readFileSync(docPath), { addBos: true });
    assert.equal(out.tokens, tokens.length);
    assert.equal(out.position, tokens.length);
    assert.ok(out.seconds > 0);
    assert.ok(Math.abs(out.tokens_per_second - out.tokens / out.seconds) <= 1e-6 * out.tokens_per_second + 1);
    assert.equal(out.state_bytes, fs.statSync(statePath).size);
    assert.ok(out.peak_rss_bytes > 1 << 20, `peak RSS ${out.peak_rss_bytes}`);

    const loaded = await model.loadState(statePath);
    const direct = model.createState();
    await model.ingest(direct, tokens);
    assert.equal(loaded.position, direct.position);
    assert.deepEqual(await greedy(model, loaded, [4, 5]), await greedy(model, direct, [4, 5]));
  });

  test('ingest --state continues a saved state; --limit cuts the tokens', () => {
    const first = path.join(dir, 'first.state');
    const second = path.join(dir, 'second.state');
    const a = runCliJson(['ingest', modelPath, docPath, '--save', first, '--limit', String(5 * TINY.chunk)]);
    assert.equal(a.tokens, 5 * TINY.chunk);
    assert.equal(a.state_bytes, model.info.stateBytes, 'a chunk boundary gives the fixed state size');
    const b = runCliJson(['ingest', modelPath, docPath, '--state', first, '--save', second]);
    assert.equal(b.position, a.position + b.tokens);
  });

  test('ingest reports progress on stderr', () => {
    const result = runCli(['ingest', modelPath, docPath, '--save', path.join(dir, 'p.state')]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stderr, /ingest: \d+\/\d+ tokens \(100\.0%\)/);
    assert.match(result.stdout, /^ingested \d+ tokens/);
  });

  test('generate streams text and --json reports the result', async () => {
    const plain = runCli(['generate', modelPath, '--prompt', 'the model', '--max-tokens', '10', '--temperature', '0', '--ignore-eos']);
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stderr, /10 tokens/);
    const out = runCliJson(['generate', modelPath, '--prompt', 'the model', '--max-tokens', '10', '--temperature', '0', '--ignore-eos']);
    assert.equal(out.n_tokens, 10);
    assert.equal(out.tokens.length, 10);
    assert.equal(out.stop_reason, 'max_tokens');
    assert.equal(typeof out.text, 'string');
    assert.ok(out.tokens_per_second > 0);
    assert.equal(plain.stdout, `${out.text}\n`, 'the streamed text is the JSON text');
    // Same greedy tokens as the addon.
    const expected = await greedy(model, model.createState(), 'the model', 10);
    assert.deepEqual(out.tokens, expected);
  });

  test('generate --speculative gives the plain greedy tokens and --json adds the statistics', () => {
    const args = ['generate', modelPath, '--prompt', 'the model', '--max-tokens', '16', '--temperature', '0', '--ignore-eos'];
    const plain = runCliJson(args);
    assert.equal(plain.speculative, undefined);
    const spec = runCliJson([...args, '--speculative']);
    assert.deepEqual(spec.tokens, plain.tokens);
    assert.equal(spec.text, plain.text);
    assert.equal(spec.speculative.draft_heads, TINY.headsMtp);
    assert.equal(spec.speculative.drafted_per_head.length, TINY.headsMtp - 1);
    assert.equal(spec.speculative.forward_passes + spec.speculative.accepted_per_head.reduce((a, b) => a + b, 0), 16);
    assert.ok(spec.speculative.tokens_per_forward >= 1);
    const narrow = runCliJson([...args, '--speculative', '--draft', '1']);
    assert.deepEqual(narrow.tokens, plain.tokens);
    assert.equal(narrow.speculative.forward_passes, 16);
    const wide = runCli([...args, '--speculative', '--draft', String(TINY.headsMtp + 1)]);
    assert.equal(wide.status, 1);
    assert.match(wide.stderr, /MGL_ERR_INVALID_ARG: .*draft = 3 heads, but the model has 2 prediction heads/);
    const lone = runCli([...args, '--draft', '2']);
    assert.equal(lone.status, 1);
    assert.match(lone.stderr, /--draft needs --speculative/);
  });

  test('generate --stop ends before the stop string', () => {
    const free = runCliJson(['generate', modelPath, '--prompt', 'a', '--max-tokens', '30', '--temperature', '0', '--ignore-eos']);
    const stop = free.text.slice(4, 6);
    assert.equal(stop.length, 2, `output too short: ${JSON.stringify(free.text)}`);
    const out = runCliJson(['generate', modelPath, '--prompt', 'a', '--max-tokens', '30', '--temperature', '0', '--ignore-eos',
      '--stop', 'never-produced', '--stop', stop]);
    assert.equal(out.stop_reason, 'stop_string');
    assert.equal(out.text, free.text.slice(0, free.text.indexOf(stop)));
  });

  test('generate continues a saved state', () => {
    const statePath = path.join(dir, 'gen.state');
    runCliJson(['ingest', modelPath, docPath, '--save', statePath]);
    const out = runCliJson(['generate', modelPath, '--state', statePath, '--prompt', ' and', '--max-tokens', '5', '--seed', '3']);
    assert.ok(out.n_tokens >= 1 && out.n_tokens <= 5);
    const missingPrompt = runCli(['generate', modelPath, '--state', statePath]);
    assert.equal(missingPrompt.status, 1);
    assert.match(missingPrompt.stderr, /--prompt is required/);
  });

  test('perplexity reports mean NLL and its exponential', async () => {
    const out = runCliJson(['perplexity', modelPath, docPath]);
    const tokens = await model.tokenize(fs.readFileSync(docPath), { addBos: true });
    assert.equal(out.tokens, tokens.length);
    assert.equal(out.scored, tokens.length - 1);
    assert.ok(out.mean_nll > 0);
    assert.ok(Math.abs(out.ppl - Math.exp(out.mean_nll)) < 1e-6 * out.ppl);
    const score = await model.score(model.createState(), tokens);
    assert.ok(Math.abs(score.meanNll - out.mean_nll) < 1e-4, `${score.meanNll} vs ${out.mean_nll}`);
  });

  test('bench measures ingest and decode at each thread count', () => {
    const out = runCliJson(['bench', modelPath, '--tokens', String(8 * TINY.chunk), '--threads', '1,2', '--decode-tokens', '4']);
    assert.equal(out.tokens, 8 * TINY.chunk);
    assert.deepEqual(out.runs.map((r) => r.threads), [1, 2]);
    for (const run of out.runs) {
      assert.ok(run.ingest_tokens_per_second > 0);
      assert.ok(run.decode_tokens_per_second > 0);
      assert.equal(run.decode_tokens, 4);
      // The model has extra heads: a speculative decode runs too.
      assert.ok(run.speculative_decode_tokens_per_second > 0);
      assert.equal(run.speculative.draft_heads, TINY.headsMtp);
      assert.ok(run.speculative.tokens_per_forward >= 1);
    }
    assert.equal(out.state_bytes, model.info.stateBytes);
    assert.ok(out.peak_rss_bytes > 0);
    const table = runCli(['bench', modelPath, '--tokens', '64', '--threads', '1', '--decode-tokens', '2']);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /ingest tok\/s/);
    assert.match(table.stdout, /speculative tok\/s/);
    assert.match(table.stdout, /acceptance per head/);
    assert.match(table.stdout, /state bytes/);
  });

  test('errors are one clear line on stderr with exit status 1', () => {
    const cases = [
      [['info', path.join(dir, 'missing.gguf')], /MGL_ERR_IO/],
      [['info', docPath], /MGL_ERR_FORMAT/],
      [['ingest', modelPath, path.join(dir, 'missing.txt'), '--save', path.join(dir, 'x.state')], /missing\.txt/],
      [['ingest', modelPath, docPath], /missing --save/],
      [['ingest', modelPath], /missing MODEL FILE/],
      [['generate', modelPath, '--max-tokens', 'ten'], /--max-tokens must be an integer/],
      [['generate', modelPath, '--top-p', '1.5'], /--top-p must be in/],
      [['generate', modelPath, '--bogus'], /unknown option --bogus/],
      [['bench', modelPath, '--threads', '1,x'], /--threads must be an integer/],
      [['frobnicate'], /unknown command/],
      [['generate', modelPath, '--state', docPath, '--prompt', 'x'], /MGL_ERR_(FORMAT|IO)/],
    ];
    for (const [args, pattern] of cases) {
      const result = runCli(args);
      assert.equal(result.status, 1, `${args.join(' ')}: status ${result.status}`);
      assert.match(result.stderr, pattern, args.join(' '));
      assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
    }
  });

  test('--help prints each command usage', () => {
    for (const command of ['info', 'ingest', 'generate', 'perplexity', 'bench']) {
      const result = runCli([command, '--help']);
      assert.equal(result.status, 0);
      assert.match(result.stdout, new RegExp(`^usage: megalodon ${command}`));
    }
    const top = runCli(['--help']);
    assert.equal(top.status, 0);
    assert.match(top.stdout, /commands:/);
    const none = runCli([]);
    assert.equal(none.status, 1);
    assert.match(runCli(['--version']).stdout, /megalodon/);
  });
});
