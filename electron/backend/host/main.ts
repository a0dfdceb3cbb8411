// Entry of the backend process: a child process (server mode, fork IPC) or an Electron
// utilityProcess (process.parentPort). Options come as one JSON argument.
import { ApiError, isMethod } from '../../api/requests';
import { Backend } from '../backend';
import type { FromHost, HostOptions, ToHost } from '../../api/host-protocol';

interface ParentPort {
  on(event: 'message', listener: (e: { data: unknown }) => void): void;
  postMessage(message: unknown): void;
}

const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort;

function send(message: FromHost): void {
  if (parentPort) parentPort.postMessage(message);
  else process.send?.(message);
}

function onMessage(listener: (message: ToHost) => void): void {
  if (parentPort) parentPort.on('message', (e) => listener(e.data as ToHost));
  else process.on('message', (m) => listener(m as ToHost));
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as HostOptions;
  let backend: Backend;
  try {
    backend = await Backend.open({ ...options, resumeUnfinished: true });
  } catch (error) {
    send({ kind: 'fatal', message: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }
  backend.onEvent((event) => send({ kind: 'event', event }));
  onMessage(async (message) => {
    if (message.kind === 'shutdown') {
      await backend.close();
      process.exit(0);
    }
    if (message.kind !== 'request') return;
    try {
      if (!isMethod(message.method)) throw new ApiError('UNKNOWN_METHOD', `unknown method ${message.method}`);
      const result = await backend.request(message.method, message.params);
      send({ kind: 'response', id: message.id, result });
    } catch (error) {
      const code = error instanceof ApiError ? error.code
        : (error as { name?: string }).name === 'AbortError' ? 'CANCELLED'
          : (error as { code?: string }).code ?? 'INTERNAL';
      send({ kind: 'response', id: message.id, error: { code, message: error instanceof Error ? error.message : String(error) } });
    }
  });
  // Without a parent (it died or closed the channel) there is nobody to serve.
  process.on('disconnect', () => {
    void backend.close().finally(() => process.exit(0));
  });
  send({ kind: 'ready', status: backend.status() });
}

void main();
