// End-to-end tests. "server": the built UI in Debian's Chromium against `folio serve` with the
// real backend and model (started here as the web server, on a fresh data folder). "electron":
// the desktop app, where an Electron binary is installed.
import fs from 'node:fs';
import path from 'node:path';
import { defineConfig } from '@playwright/test';
import { CHROMIUM, CHROMIUM_ARGS, E2E_DATA, E2E_MODEL, E2E_PORT, E2E_TOKEN, electronBinary, ELECTRON_SKIP_REASON, ROOT } from './env';

if (!fs.existsSync(E2E_MODEL)) {
  throw new Error(`e2e: no model at ${E2E_MODEL}. Put the default model there or set FOLIO_E2E_MODEL to a GGUF file.`);
}
for (const built of ['out/electron/cli/folio.js', 'out/renderer/index.html']) {
  if (!fs.existsSync(path.join(ROOT, built))) throw new Error(`e2e: ${built} is missing; build first (npm run build:ts, npm run build:renderer).`);
}

// Said once, by the runner (workers load this file too).
const electron = electronBinary();
if (!electron.path && process.env.TEST_WORKER_INDEX === undefined) {
  process.stdout.write(`e2e: the electron project is skipped: ${ELECTRON_SKIP_REASON(electron.reason)}.\n`);
}

export default defineConfig({
  testDir: '.',
  outputDir: path.join(ROOT, 'test-results', 'e2e'),
  timeout: 240_000,
  expect: { timeout: 30_000 },
  workers: 1,
  fullyParallel: false,
  forbidOnly: Boolean(process.env.CI),
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${E2E_PORT}`,
    viewport: { width: 1400, height: 880 },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
  projects: [
    {
      name: 'server',
      testMatch: /server\.spec\.ts$/,
      use: { browserName: 'chromium', launchOptions: { executablePath: CHROMIUM, args: CHROMIUM_ARGS } },
    },
    { name: 'electron', testMatch: /electron\.spec\.ts$/ },
  ],
  webServer: {
    command: `node out/electron/cli/folio.js serve --port ${E2E_PORT} --data "${E2E_DATA}" --model "${E2E_MODEL}"`,
    cwd: ROOT,
    url: `http://127.0.0.1:${E2E_PORT}/`,
    env: { FOLIO_TOKEN: E2E_TOKEN },
    reuseExistingServer: false,
    timeout: 120_000,
    stdout: 'pipe',
    stderr: 'pipe',
  },
});
