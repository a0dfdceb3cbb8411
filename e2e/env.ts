// Settings of the end-to-end run, shared by the Playwright config and the tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..');
export const E2E_PORT = Number(process.env.FOLIO_E2E_PORT ?? 4791);
export const E2E_TOKEN = process.env.FOLIO_E2E_TOKEN ?? 'folio-e2e-token-0123456789';
// Created once in the runner; the workers inherit the variable, so they all see the same folder.
process.env.FOLIO_E2E_DATA ??= fs.mkdtempSync(path.join(os.tmpdir(), 'folio-e2e-'));
export const E2E_DATA = process.env.FOLIO_E2E_DATA;
export const E2E_MODEL = path.resolve(process.env.FOLIO_E2E_MODEL ?? path.join(ROOT, 'models', 'default', 'folio-default.gguf'));
export const CHROMIUM = process.env.FOLIO_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic'];

/** The installed Electron binary, or why there is none (installs may skip its download). */
export function electronBinary(): { path?: string; reason?: string } {
  try {
    // In Node, the electron package exports its binary's path, and throws when it has none.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const binary = require('electron') as unknown;
    if (typeof binary === 'string' && fs.existsSync(binary)) return { path: binary };
    return { reason: `the Electron binary ${String(binary)} does not exist` };
  } catch (error) {
    return { reason: error instanceof Error ? error.message : String(error) };
  }
}

export const ELECTRON_SKIP_REASON = (reason?: string) =>
  `no Electron binary is installed (${reason}); the desktop app is covered here by the server-mode tests and the ` +
  'desktop shell\'s unit tests';
