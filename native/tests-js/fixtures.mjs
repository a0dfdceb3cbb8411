// Shared fixtures of the Node tests: random models written by models/make_tiny.py into a
// temporary folder, and the paths of the built addon and CLI.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = path.join(repoRoot, 'build', 'Release', 'megalodon');

const require = createRequire(import.meta.url);
export const megalodon = require(path.join(repoRoot, 'native', 'index.js'));

/** A temporary folder removed when the process exits. */
export function tempDir(prefix = 'megalodon-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a random model with models/make_tiny.py; `options` maps to its command line flags. */
export function makeModel(dir, name, options = {}) {
  const out = path.join(dir, name);
  const args = [path.join(repoRoot, 'models', 'make_tiny.py'), out];
  for (const [key, value] of Object.entries(options)) {
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    if (value === true) args.push(flag);
    else args.push(flag, String(value));
  }
  execFileSync('python3', args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

// Small but complete: two prediction heads, 16-token chunks, byte-level BPE vocabulary.
export const TINY = { dModel: 64, layers: 2, chunk: 16, vocab: 512, headsMtp: 2, seed: 7 };

/** Runs the CLI; returns {status, stdout, stderr}. */
export function runCli(args, options = {}) {
  const result = spawnSync(cliPath, args, { encoding: 'utf8', ...options });
  if (result.error) throw result.error;
  return result;
}

/** Runs the CLI with --json and parses stdout (asserting success). */
export function runCliJson(args) {
  const result = runCli([...args, '--json']);
  if (result.status !== 0) {
    throw new Error(`megalodon ${args.join(' ')} exited with ${result.status}: ${result.stderr}`);
  }
  return JSON.parse(result.stdout);
}

/** English-like filler text; `words` words long, deterministic. */
export function sampleText(words, seed = 1) {
  const vocabulary = ('the a model reads long documents and keeps its state small while the moving average ' +
    'carries memory forward through every chunk of text , . station bakery north garden numbers').split(' ');
  let x = seed >>> 0;
  const out = [];
  for (let i = 0; i < words; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.push(vocabulary[x % vocabulary.length]);
    if (i % 17 === 16) out.push('\n');
  }
  return out.join(' ');
}

/** Greedy continuation: the generated token ids (as a plain array). */
export async function greedy(model, state, prompt, maxTokens = 12) {
  const generation = model.generate(state, { prompt, maxTokens, temperature: 0, stopAtEos: false });
  const tokens = [];
  for await (const { token } of generation) tokens.push(token);
  return tokens;
}
