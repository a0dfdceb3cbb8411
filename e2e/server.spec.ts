// The whole app in a browser against `folio serve` and the real backend: a first-time user adds
// documents, watches them being read, reads, asks, follows a citation, summarizes, reloads,
// and keeps working after the backend process is killed and restarted.
import fs from 'node:fs';
import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import type { DocumentInfo, EngineStatus } from '../electron/api/types';
import { E2E_DATA, E2E_PORT, E2E_TOKEN } from './env';
import { api, backendHostPids, BOOK_TITLE, longText, QUESTION, shoot, tempDir, UNIQUE_SENTENCE, writeBook } from './fixtures';

test.describe.configure({ mode: 'serial' });

const LONG_TITLE = 'long-notes';
const bookPath = writeBook(tempDir());
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

const library = () => page.getByRole('navigation', { name: 'Library' });
const row = (title: string) => library().getByRole('button', { name: new RegExp(`^${title}`) });
const reader = () => page.getByTestId('reader-text');

async function documentNamed(request: Parameters<typeof api>[0], title: string): Promise<DocumentInfo> {
  const docs = await api<DocumentInfo[]>(request, E2E_TOKEN, 'documents.list');
  const doc = docs.find((d) => d.title === title);
  if (!doc) throw new Error(`no document ${title}`);
  return doc;
}

test.beforeAll(async ({ browser }) => {
  context = await browser.newContext({ baseURL: `http://127.0.0.1:${E2E_PORT}`, viewport: { width: 1400, height: 880 }, acceptDownloads: true });
  page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
});

test.afterAll(async () => {
  await context.close();
});

test.afterEach(() => {
  expect(pageErrors, 'errors thrown in the page').toEqual([]);
});

test('a first-time user is told what to do', async () => {
  await page.goto(`/#token=${E2E_TOKEN}`);
  await expect(page.getByRole('heading', { name: 'Welcome to Folio' })).toBeVisible();
  await expect(library().getByText('Your library is empty.')).toBeVisible();
  await expect(page.getByTestId('engine-state')).toHaveText('Engine: Ready');
  // The token leaves the address bar (it stays in this tab's session storage).
  expect(page.url()).not.toContain('token');
  await shoot(page, '01-empty-library');
});

test('a book added with Open… is read to the end', async () => {
  // Every value the progress bars show while the book is read.
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { progressSeen: string[] }).progressSeen = seen;
    new MutationObserver(() => {
      for (const bar of document.querySelectorAll('[role=progressbar]')) seen.push(bar.getAttribute('aria-valuenow') ?? 'busy');
    }).observe(document.body, { subtree: true, childList: true, attributes: true });
  });
  const chooser = page.waitForEvent('filechooser');
  await page.getByRole('button', { name: 'Open…' }).click();
  await (await chooser).setFiles(bookPath);
  await expect(row(BOOK_TITLE)).toBeVisible();
  await expect(row(BOOK_TITLE).getByText('Ready')).toBeVisible({ timeout: 180_000 });
  await expect(row(BOOK_TITLE)).toContainText('tokens');
  const seen = await page.evaluate(() => (window as unknown as { progressSeen: string[] }).progressSeen);
  expect(seen.length, 'progress was shown while the book was read').toBeGreaterThan(0);
  const book = await documentNamed(page.request, BOOK_TITLE);
  expect(book).toMatchObject({ status: 'ready', format: 'markdown' });
  expect(book.tokensIngested).toBe(book.tokenCount);
});

test('a long text dropped on the window: progress, cancel, resume, reader, remove', async ({ request }) => {
  const text = longText(Number(process.env.FOLIO_E2E_LONG_CHARS ?? 1_500_000));
  await page.evaluate(async (content) => {
    const data = new DataTransfer();
    data.items.add(new File([content], 'long-notes.txt', { type: 'text/plain' }));
    for (const type of ['dragenter', 'dragover', 'drop']) {
      window.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
    }
  }, text);
  const progress = page.getByRole('region', { name: `Reading progress of ${LONG_TITLE}` });
  await expect(progress.getByRole('heading', { name: 'Reading with the model' })).toBeVisible({ timeout: 120_000 });
  await expect(progress.getByText('tokens/s')).toBeVisible();
  await expect(progress.getByText('Time left')).toBeVisible();
  await expect(progress.getByRole('progressbar')).toHaveAttribute('aria-valuenow', /^[0-9.]+$/);
  await shoot(page, '02-ingest-progress');

  await progress.getByRole('button', { name: 'Cancel reading' }).click();
  await expect(progress.getByRole('heading', { name: 'Cancelled' })).toBeVisible();
  await expect(row(LONG_TITLE).getByText('Cancelled')).toBeVisible();
  const cancelled = await documentNamed(request, LONG_TITLE);
  expect(cancelled.status).toBe('cancelled');

  await progress.getByRole('button', { name: 'Resume reading' }).click();
  await expect(progress.getByRole('heading', { name: 'Reading with the model' })).toBeVisible();
  // Resumed from the last snapshot, not from the start.
  const resumedAt = Number(await progress.getByRole('progressbar').getAttribute('aria-valuenow'));
  expect(resumedAt).toBeGreaterThanOrEqual(Math.floor((1000 * cancelled.tokensIngested) / Math.max(1, cancelled.tokenCount)) / 10);

  // The reader shows the text while it is being read, rendering only what is in view.
  await expect(reader()).toContainText(text.slice(0, 40));
  await reader().evaluate((el) => { el.scrollTop = el.scrollHeight / 2; });
  await expect(reader().locator('[data-loaded]').first()).toBeVisible();
  await expect.poll(() => reader().locator('[data-loaded]').count()).toBeGreaterThan(0);
  expect(await reader().locator('[data-block]').count()).toBeLessThan(20);
  await shoot(page, '03-reader-long-text');

  await page.getByRole('button', { name: 'Remove…' }).click();
  await page.getByRole('button', { name: 'Remove from library' }).click();
  await expect(row(LONG_TITLE)).toHaveCount(0);
});

test('the reader shows the book with its outline', async () => {
  await row(BOOK_TITLE).click();
  const outline = page.getByRole('navigation', { name: 'Outline' });
  await expect(outline.getByRole('button', { name: 'Chapter 5' })).toBeVisible();
  await outline.getByRole('button', { name: 'Chapter 3' }).click();
  await expect(outline.getByRole('button', { name: 'Chapter 3' })).toHaveAttribute('aria-current', 'location');
  await expect(reader().getByText('# Chapter 3')).toBeInViewport();
  await shoot(page, '04-reader-outline');
});

test('a question is answered with citations; a citation opens its passage', async () => {
  await page.keyboard.press('Control+k');
  const box = page.getByRole('textbox', { name: `Question about ${BOOK_TITLE}` });
  await expect(box).toBeFocused();
  await box.fill(QUESTION);
  await box.press('Enter');
  const conversation = page.getByRole('log', { name: 'Conversation' });
  await expect(conversation.getByText(QUESTION)).toBeVisible();
  await expect(page.getByRole('button', { name: 'Ask', exact: true })).toBeVisible({ timeout: 120_000 });
  const first = conversation.getByRole('button', { name: /^Citation 1: / });
  await expect(first).toBeVisible();
  // How the answer was decoded: its length and speed.
  await expect(conversation.getByText(/^\d+ tokens? at [\d.]+k? tokens\/s/)).toBeVisible();
  await first.click();
  const passage = reader().locator('mark.passage');
  await expect(passage).toContainText(UNIQUE_SENTENCE);
  await expect(passage).toBeInViewport();
  await shoot(page, '05-answer-citation');
});

test('the book is summarized, by chapter, and exported', async () => {
  await page.getByRole('tab', { name: 'Summary' }).click();
  await page.getByRole('button', { name: 'Summarize' }).click();
  await expect(page.getByRole('button', { name: 'Regenerate' })).toBeVisible({ timeout: 180_000 });
  const panel = page.getByRole('region', { name: `Summary of ${BOOK_TITLE}` });
  await expect(panel.getByRole('region', { name: 'The whole document' })).toBeVisible();
  for (let chapter = 1; chapter <= 5; chapter++) {
    await expect(panel.getByRole('region', { name: `Chapter ${chapter}` })).toBeVisible();
  }
  // A key passage opens in the reader.
  await panel.getByRole('region', { name: 'Chapter 3' }).getByRole('button', { name: /^Open key passage/ }).first().click();
  await expect(reader().locator('mark.passage')).toBeInViewport();
  await shoot(page, '06-summary');

  const download = page.waitForEvent('download');
  await panel.getByRole('button', { name: 'Export Markdown' }).click();
  const file = await (await download).path();
  const markdown = fs.readFileSync(file, 'utf8');
  expect(markdown).toContain(`# Summary of ${BOOK_TITLE}`);
  expect(markdown).toContain('### Chapter 3');
});

test('settings show the model and change a setting', async ({ request }) => {
  await page.keyboard.press('Control+,');
  const dialog = page.getByRole('dialog', { name: 'Settings' });
  await expect(dialog.getByRole('region', { name: 'Model' })).toContainText('Parameters');
  await expect(dialog.getByRole('region', { name: 'Model' })).toContainText('State size');
  // The automatic speculative setting says what it has measured on the answers and summaries so far.
  await expect(dialog.getByText(/(still measuring|Measured) on your answers and summaries.* tokens\/s (speculative|plain) \(\d+ runs?\)/)).toBeVisible();
  const interval = dialog.getByRole('spinbutton', { name: 'Snapshot interval (tokens)' });
  await interval.fill('8192');
  await interval.press('Enter');
  await expect.poll(async () => (await api<{ snapshotInterval: number }>(request, E2E_TOKEN, 'settings.get')).snapshotInterval).toBe(8192);
  await shoot(page, '07-settings');
  await page.keyboard.press('Escape');
  await expect(dialog).toHaveCount(0);
});

/** Controls the accessibility tree shows without a name. */
async function unnamedControls(): Promise<string[]> {
  const tree = await page.locator('body').ariaSnapshot();
  return tree.split('\n').filter((line) => /^\s*- (button|textbox|combobox|spinbutton|checkbox|link|tab|slider|listbox)(\s*\[[^\]]*\])*:?\s*$/.test(line));
}

test('every control has an accessible name and the panels work from the keyboard', async () => {
  expect(await unnamedControls()).toEqual([]);
  // The tabs follow the arrow keys.
  await page.getByRole('tab', { name: 'Summary' }).focus();
  await page.keyboard.press('ArrowRight');
  await expect(page.getByRole('tab', { name: 'Ask' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByRole('tab', { name: 'Ask' })).toBeFocused();
  expect(await unnamedControls()).toEqual([]);
  await page.keyboard.press('ArrowLeft');
  await expect(page.getByRole('tab', { name: 'Summary' })).toHaveAttribute('aria-selected', 'true');
  await page.keyboard.press('Control+,');
  await expect(page.getByRole('dialog', { name: 'Settings' })).toBeVisible();
  expect(await unnamedControls()).toEqual([]);
  await page.keyboard.press('Escape');
});

test('after a reload, the library, conversation and summary are still there', async () => {
  await page.reload();
  await expect(row(BOOK_TITLE).getByText('Ready')).toBeVisible();
  const panel = page.getByRole('region', { name: `Summary of ${BOOK_TITLE}` });
  await expect(panel.getByRole('region', { name: 'The whole document' })).toBeVisible();
  await expect(panel.getByText('saved').first()).toBeVisible();
  await page.getByRole('tab', { name: 'Ask' }).click();
  await expect(page.getByRole('log', { name: 'Conversation' }).getByText(QUESTION)).toBeVisible();
  await expect(page.getByRole('region', { name: `Reading progress of ${BOOK_TITLE}` })).toHaveCount(0);
  await shoot(page, '08-after-reload');
});

test('after the backend is killed and restarted, questions work without reading again', async ({ request }) => {
  const before = await documentNamed(request, BOOK_TITLE);
  const [pid] = backendHostPids(E2E_DATA);
  expect(pid, 'the backend host process').toBeGreaterThan(0);
  process.kill(pid, 'SIGKILL');
  await expect.poll(async () => {
    const pids = backendHostPids(E2E_DATA);
    if (!pids.length || pids.includes(pid)) return 'down';
    try {
      return (await api<EngineStatus>(request, E2E_TOKEN, 'engine.status')).state;
    } catch {
      return 'down';
    }
  }, { timeout: 120_000 }).toMatch(/^(ready|busy)$/);
  await expect(page.getByTestId('engine-state')).toHaveText(/Engine: (Ready|Working)/);

  const box = page.getByRole('textbox', { name: `Question about ${BOOK_TITLE}` });
  await box.fill('What lies beneath the seventh lighthouse stair?');
  await box.press('Enter');
  const conversation = page.getByRole('log', { name: 'Conversation' });
  await expect(page.getByRole('button', { name: 'Ask', exact: true })).toBeVisible({ timeout: 120_000 });
  await expect(conversation.getByRole('listitem').filter({ hasText: 'Folio answered' }).last().getByRole('button', { name: /^Citation 1: / })).toBeVisible();
  await conversation.getByRole('button', { name: /^Citation 1: / }).last().click();
  await expect(reader().locator('mark.passage')).toContainText('seventh lighthouse stair');

  const after = await documentNamed(request, BOOK_TITLE);
  expect(after.status).toBe('ready');
  expect(after.tokensIngested).toBe(before.tokensIngested);
  expect(after.updatedAt, 'the book was not read again').toBe(before.updatedAt);
  await shoot(page, '09-after-backend-restart');
});

test('a collection is asked as a whole', async () => {
  await page.getByRole('button', { name: 'New collection…' }).click();
  await page.getByRole('textbox', { name: 'Name of the new collection' }).fill('Lighthouse shelf');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.getByRole('combobox', { name: 'Collection' }).selectOption({ label: 'Lighthouse shelf' });
  const group = library().getByRole('group', { name: 'Collection Lighthouse shelf' });
  await expect(group.getByRole('button', { name: new RegExp(`^${BOOK_TITLE}`) })).toBeVisible();

  await page.getByRole('button', { name: 'Ask the collection Lighthouse shelf' }).click();
  const box = page.getByRole('textbox', { name: 'Question about Lighthouse shelf' });
  await box.fill(QUESTION);
  await box.press('Enter');
  await expect(page.getByRole('button', { name: 'Ask', exact: true })).toBeVisible({ timeout: 120_000 });
  await page.getByRole('log', { name: 'Conversation' }).getByRole('button', { name: /^Citation 1: / }).click();
  await expect(reader().locator('mark.passage')).toContainText(UNIQUE_SENTENCE);
  await shoot(page, '10-collection');
  await page.getByRole('button', { name: `Ask ${BOOK_TITLE} instead` }).click();
  await expect(page.getByRole('textbox', { name: `Question about ${BOOK_TITLE}` })).toBeVisible();
});

test('the dark theme follows the system', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(background).toBe('rgb(23, 24, 27)');
  await shoot(page, '11-dark-theme');
  await page.emulateMedia({ colorScheme: 'light' });
});
