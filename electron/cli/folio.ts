// Command line: npm run -s folio -- <command> [options]
//   add PATH... [--json]          read and ingest documents (progress on stderr)
//   list [--json]                 documents in the library
//   ask DOC "QUESTION" [--json]   answer with citations (DOC: id or title)
//   summarize DOC [--json] [--regenerate]
//   remove DOC | resume DOC | cancel DOC
//   serve [--port P]              server mode (HTTP + WebSocket on 127.0.0.1, token printed)
// Everywhere: --data DIR (or FOLIO_DATA), --model PATH (or FOLIO_MODEL), --threads N.
import crypto from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ApiError } from '../api/requests';
import type { AnswerResult, DocumentInfo, IngestProgress, SummaryResult } from '../api/types';
import { Backend } from '../backend/backend';
import { resolveDataDir, resolveModelPath } from '../backend/config';
import { appRoot } from '../backend/engine/engine';
import { BackendProcess } from '../backend/host/supervisor';
import { FolioServer } from '../server/server';

const USAGE = `usage: folio <command> [options]
  add PATH... [--json]            read and ingest files or folders
  list [--json]                   list the library
  ask DOC "QUESTION" [--json]     answer a question about a document (id or title)
  summarize DOC [--json] [--regenerate]
  remove DOC | resume DOC | cancel DOC
  serve [--port P]                serve the app and its API on 127.0.0.1
options: --data DIR  --model PATH  --threads N`;

class UsageError extends Error {}

function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function progressLine(titles: Map<string, string>, p: IngestProgress): string {
  const title = titles.get(p.docId) ?? p.docId;
  if (p.phase === 'ingesting' && p.total > 0) {
    const pct = ((100 * p.done) / p.total).toFixed(1);
    return `${title}: reading with the model ${p.done}/${p.total} tokens (${pct}%)  ${Math.round(p.tokensPerSecond)} tokens/s  ETA ${formatDuration(p.etaSeconds)}`;
  }
  if (p.phase === 'indexing' && p.total > 0) return `${title}: indexing ${((100 * p.done) / p.total).toFixed(0)}%`;
  return `${title}: ${p.phase}${p.message ? `: ${p.message}` : ''}`;
}

function table(docs: DocumentInfo[]): string {
  if (!docs.length) return 'The library is empty. Add a document with: folio add PATH';
  const rows = docs.map((d) => [d.id, d.status, String(d.tokenCount), d.format, d.title]);
  const head = ['id', 'status', 'tokens', 'format', 'title'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

function printAnswer(result: AnswerResult): void {
  process.stdout.write('\n\nSources:\n');
  for (const c of result.citations) {
    const snippet = c.text.replace(/\s+/g, ' ').trim().slice(0, 160);
    process.stdout.write(`[${c.n}] ${c.docTitle}, ${c.location} (chars ${c.charStart}-${c.charEnd}): ${snippet}\n`);
  }
}

async function withBackend<T>(values: Record<string, unknown>, fn: (b: Backend) => Promise<T>): Promise<T> {
  const backend = await Backend.open({
    dataDir: resolveDataDir(values.data as string | undefined),
    modelPath: resolveModelPath(values.model as string | undefined),
    threads: values.threads ? Number(values.threads) : undefined,
  });
  const stop = () => {
    process.stderr.write('\nstopping (work so far is kept; `folio resume` continues)\n');
    void backend.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await fn(backend);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await backend.close();
  }
}

async function findDoc(backend: Backend, query: string): Promise<DocumentInfo> {
  return backend.library.findDocument(query);
}

async function waitForJobs(backend: Backend, docs: DocumentInfo[], json: boolean): Promise<DocumentInfo[]> {
  const titles = new Map(docs.map((d) => [d.id, d.title]));
  const interactive = process.stderr.isTTY;
  const unsubscribe = backend.onEvent((event) => {
    if (event.type !== 'progress') return;
    const line = progressLine(titles, event.progress);
    if (interactive) process.stderr.write(`\r\x1b[K${line}`);
    else if (event.progress.phase !== 'ingesting' || json === false) process.stderr.write(`${line}\n`);
    if (interactive && ['done', 'error', 'cancelled'].includes(event.progress.phase)) process.stderr.write('\n');
  });
  await backend.idle();
  unsubscribe();
  return Promise.all(docs.map((d) => backend.request('documents.get', { docId: d.id })));
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      data: { type: 'string' }, model: { type: 'string' }, threads: { type: 'string' }, port: { type: 'string' },
      json: { type: 'boolean' }, regenerate: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...args] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 1;
  }
  const json = Boolean(values.json);
  const out = (value: unknown, text: string) => process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);

  switch (command) {
    case 'add': {
      if (!args.length) throw new UsageError('add: give at least one file or folder');
      return withBackend(values, async (backend) => {
        const docs = await backend.request('documents.add', { paths: args });
        const final = await waitForJobs(backend, docs, json);
        out(final, table(final));
        return final.every((d) => d.status === 'ready') ? 0 : 1;
      });
    }
    case 'list':
      return withBackend(values, async (backend) => {
        const docs = await backend.request('documents.list', {});
        out(docs, table(docs));
        return 0;
      });
    case 'ask': {
      const [docQuery, ...words] = args;
      if (!docQuery || !words.length) throw new UsageError('ask: give a document and a question');
      return withBackend(values, async (backend) => {
        const doc = await findDoc(backend, docQuery);
        const requestId = crypto.randomBytes(6).toString('hex');
        const unsubscribe = json ? () => undefined : backend.onEvent((e) => {
          if (e.type === 'answer-token' && e.requestId === requestId) process.stdout.write(e.text);
        });
        const result = await backend.request('ask', { requestId, question: words.join(' '), docIds: [doc.id] });
        unsubscribe();
        if (json) out(result, '');
        else printAnswer(result);
        return 0;
      });
    }
    case 'summarize': {
      if (!args[0]) throw new UsageError('summarize: give a document');
      return withBackend(values, async (backend) => {
        const doc = await findDoc(backend, args[0]);
        const requestId = crypto.randomBytes(6).toString('hex');
        let current = Number.NaN;
        const unsubscribe = json ? () => undefined : backend.onEvent((e) => {
          if (e.type === 'summary-token' && e.requestId === requestId) {
            if (e.sectionIdx !== current) {
              current = e.sectionIdx;
              const label = e.sectionIdx < 0 ? doc.title : backend.library.getSections(doc.id).find((s) => s.idx === e.sectionIdx)?.label;
              process.stdout.write(`\n\n## ${label}\n`);
            }
            process.stdout.write(e.text);
          } else if (e.type === 'summary-section' && e.requestId === requestId && e.summary.cached) {
            process.stdout.write(`\n\n## ${e.summary.label}\n${e.summary.text}`);
          }
        });
        const result: SummaryResult = await backend.request('summarize', { requestId, docId: doc.id, regenerate: Boolean(values.regenerate) });
        unsubscribe();
        if (json) out(result, '');
        else process.stdout.write('\n');
        return 0;
      });
    }
    case 'remove':
    case 'resume':
    case 'cancel': {
      if (!args[0]) throw new UsageError(`${command}: give a document`);
      return withBackend(values, async (backend) => {
        const doc = await findDoc(backend, args[0]);
        if (command === 'remove') {
          await backend.request('documents.remove', { docId: doc.id });
          out({ removed: doc.id }, `removed ${doc.title} (${doc.id})`);
          return 0;
        }
        if (command === 'cancel') {
          out(await backend.request('documents.cancel', { docId: doc.id }), `cancelled ${doc.title}`);
          return 0;
        }
        await backend.request('documents.resume', { docId: doc.id });
        const [final] = await waitForJobs(backend, [doc], json);
        out(final, table([final]));
        return final.status === 'ready' ? 0 : 1;
      });
    }
    case 'serve':
      return serve(values);
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

async function serve(values: Record<string, unknown>): Promise<number> {
  const dataDir = resolveDataDir(values.data as string | undefined);
  const backend = new BackendProcess({ dataDir, modelPath: resolveModelPath(values.model as string | undefined),
    threads: values.threads ? Number(values.threads) : undefined });
  await backend.start();
  const port = values.port !== undefined ? Number(values.port) : Number(process.env.FOLIO_PORT ?? 4700);
  const server = new FolioServer(backend, { port, token: process.env.FOLIO_TOKEN || undefined,
    staticDir: path.join(appRoot(), 'out', 'renderer'), uploadDir: path.join(dataDir, 'uploads') });
  await server.listen();
  process.stdout.write(`Folio is serving ${server.url}#token=${server.token}\n`);
  process.stdout.write(`API token: ${server.token}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  await backend.close();
  return 0;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`folio: ${message}\n`);
    if (error instanceof UsageError) process.stderr.write(`${USAGE}\n`);
    process.exit(error instanceof UsageError || error instanceof ApiError ? 2 : 1);
  },
);
