// End-to-end backend benchmark (best of two alternating rounds each): the whole ingestion pipeline (read, passages, index, model,
// snapshots) against the runtime alone on the same text; time to the first answer token on a
// long document; data-directory size per million tokens.
//
//   node bench/backend_bench.mjs [--tokens 1000000] [--model PATH] [--threads 2]
// (needs `npm run build`; prints a table)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { Backend } = require(path.join(root, 'out/electron/backend/backend.js'));
const native = require(path.join(root, 'native/index.js'));

const { values } = parseArgs({ options: {
  tokens: { type: 'string', default: '1000000' },
  model: { type: 'string', default: path.join(root, 'models/default/folio-default.gguf') },
  threads: { type: 'string', default: '2' },
} });
const targetTokens = Number(values.tokens);
const threads = Number(values.threads);

function dirBytes(dir) {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return total;
}

// A long text with chapter headings: held-out book text if present, else generated prose.
function makeText(model) {
  const heldOut = path.join(root, 'models/data/out/heldout_book.txt');
  let base = fs.existsSync(heldOut) ? fs.readFileSync(heldOut, 'utf8') : '';
  if (!base) {
    const words = 'river stone lantern harbor meadow quiet morning letter garden winter journey window'.split(' ');
    base = Array.from({ length: 20000 }, (_, i) => `${words[i % 12]} ${words[(i * 7) % 12]} ${words[(i * 5) % 12]}.`).join(' ');
  }
  const sample = model.tokenizeSync(base.slice(0, 200000)).length / Math.min(base.length, 200000);
  const chars = Math.ceil(targetTokens / sample);
  let text = '';
  let chapter = 1;
  while (text.length < chars) {
    text += `\n\n# Chapter ${chapter++}\n\n${base.slice(0, Math.min(base.length, chars - text.length))}`;
  }
  return text;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'folio-bench-'));
const model = await native.Model.load(values.model, { threads });
const text = makeText(model);
const file = path.join(tmp, 'long.md');
fs.writeFileSync(file, text);

// Runtime only: tokenize the text and stream it through the model in one call.
async function runtimeOnly() {
  const t0 = performance.now();
  const tokens = await model.tokenize(text);
  const tokenizeSeconds = (performance.now() - t0) / 1000;
  const state = model.createState();
  const t1 = performance.now();
  await model.ingest(state, tokens);
  const ingestSeconds = (performance.now() - t1) / 1000;
  state.close();
  return { tokens: tokens.length, tokenizeSeconds, ingestSeconds, seconds: tokenizeSeconds + ingestSeconds };
}

// The whole pipeline on a fresh data folder: read, passages, index, model, snapshots.
async function pipeline(round) {
  const dataDir = path.join(tmp, `data${round}`);
  const backend = await Backend.open({ dataDir, modelPath: values.model, threads });
  let modelStart = 0;
  backend.onEvent((e) => {
    if (e.type === 'progress' && e.progress.phase === 'ingesting' && !modelStart) modelStart = performance.now();
  });
  const t0 = performance.now();
  const [doc] = await backend.request('documents.add', { paths: [file] });
  await backend.idle();
  const end = performance.now();
  const detail = await backend.request('documents.get', { docId: doc.id });
  if (detail.status !== 'ready') throw new Error(`ingest ended with status ${detail.status}: ${detail.error}`);
  const answer = await backend.request('ask', { requestId: 'bench', question: 'Who went to the harbor in the morning?', docIds: [doc.id], maxTokens: 16 });
  const dataBytes = dirBytes(dataDir);
  await backend.close();
  return { detail, seconds: (end - t0) / 1000, prepareSeconds: (modelStart - t0) / 1000, answer, dataBytes };
}

// The machine is shared: alternate the two and keep the best of each.
const runs = { runtime: [], pipeline: [] };
for (let round = 0; round < 2; round++) {
  runs.runtime.push(await runtimeOnly());
  runs.pipeline.push(await pipeline(round));
}
model.close();
fs.rmSync(tmp, { recursive: true, force: true });
const best = (list) => list.reduce((a, b) => (b.seconds < a.seconds ? b : a));
const rt = best(runs.runtime);
const pl = best(runs.pipeline);
const { detail, answer, dataBytes } = pl;
const tokens = { length: rt.tokens };
const tokenizeSeconds = rt.tokenizeSeconds;
const runtimeSeconds = rt.ingestSeconds;
const pipelineSeconds = pl.seconds;

const mtok = detail.tokenCount / 1e6;
const runtimeRate = tokens.length / (tokenizeSeconds + runtimeSeconds);
const pipelineRate = detail.tokenCount / pipelineSeconds;
const rows = [
  ['document tokens', String(detail.tokenCount)],
  ['document characters', String(text.length)],
  ['runtime only: tokenize s', tokenizeSeconds.toFixed(1)],
  ['runtime only: ingest tokens/s', Math.round(tokens.length / runtimeSeconds).toString()],
  ['runtime only: tokenize + ingest tokens/s', Math.round(runtimeRate).toString()],
  ['pipeline: read+index+ingest+snapshots tokens/s', Math.round(pipelineRate).toString()],
  ['pipeline: reading + indexing s (before the model starts)', pl.prepareSeconds.toFixed(2)],
  ['pipeline / runtime (tokenize + ingest)', `${((100 * pipelineRate) / runtimeRate).toFixed(0)}%`],
  ['snapshots', String(detail.snapshots)],
  ['time to first answer token ms', String(answer.firstTokenMs)],
  ['data directory MiB per million tokens', (dataBytes / 2 ** 20 / mtok).toFixed(1)],
];
const width = Math.max(...rows.map((r) => r[0].length));
console.log(`\nbackend benchmark, ${path.basename(values.model)}, ${threads} threads\n`);
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
