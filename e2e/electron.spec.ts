// The desktop app itself, driven through Playwright's Electron support. It needs an Electron
// binary, which installs that skip the download do not have: there the test is skipped.
import fs from 'node:fs';
import path from 'node:path';
import { _electron as electron, expect, test } from '@playwright/test';
import { E2E_MODEL, electronBinary, ELECTRON_SKIP_REASON, ROOT } from './env';
import { tempDir, writeBook } from './fixtures';

const binary = electronBinary();
const mainScript = path.join(ROOT, 'out', 'electron', 'main', 'main.js');

test.skip(!binary.path, ELECTRON_SKIP_REASON(binary.reason));

test('the desktop app opens a secure window, talks to its backend and reads a book', async () => {
  expect(fs.existsSync(mainScript), 'build the desktop shell first (tsc -p electron/main/tsconfig.json)').toBe(true);
  const dataDir = tempDir();
  const env: Record<string, string> = { ...(process.env as Record<string, string>), FOLIO_DATA: dataDir, FOLIO_MODEL: E2E_MODEL };
  delete env.ELECTRON_RUN_AS_NODE;
  const app = await electron.launch({ executablePath: binary.path, args: [mainScript], env });
  try {
    const page = await app.firstWindow();
    await expect(page.getByRole('heading', { name: 'Welcome to Folio' })).toBeVisible();
    expect(page.url()).toBe('folio://app/index.html');

    // Context isolation, no Node integration, sandbox: the page sees the typed bridge and
    // nothing of Node or Electron.
    expect(await page.evaluate(() => Object.keys((window as unknown as { folio: object }).folio).sort()))
      .toEqual(['call', 'onEvent', 'openDialog', 'pathForFile', 'version']);
    expect(await page.evaluate(() => [typeof (window as unknown as { require?: unknown }).require,
      typeof (window as unknown as { process?: unknown }).process])).toEqual(['undefined', 'undefined']);
    // Navigation away and new windows are refused.
    await page.evaluate(() => { window.open('file:///etc/hosts'); });
    await page.evaluate(() => { window.location.href = 'file:///etc/hosts'; }).catch(() => undefined);
    expect(app.windows()).toHaveLength(1);
    await expect.poll(() => page.url()).toBe('folio://app/index.html');

    // A book added through the API the page uses ends up read and readable.
    const book = writeBook(tempDir());
    await page.evaluate(async (file) => {
      const bridge = (window as unknown as { folio: { call(m: string, p: unknown): Promise<unknown> } }).folio;
      await bridge.call('documents.add', { paths: [file] });
    }, book);
    const row = page.getByRole('navigation', { name: 'Library' }).getByRole('button', { name: /^lantern-keeper/ });
    await expect(row.getByText('Ready')).toBeVisible({ timeout: 180_000 });
    await row.click();
    await expect(page.getByTestId('reader-text')).toContainText('Chapter 1');
    // A payload outside the contract is refused before it reaches the backend.
    const refused = await page.evaluate(async () => {
      const bridge = (window as unknown as { folio: { call(m: string, p: unknown): Promise<unknown> } }).folio;
      return bridge.call('documents.get', { docId: '../../etc/passwd' });
    });
    expect(refused).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
  } finally {
    await app.close();
  }
});
