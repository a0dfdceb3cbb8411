import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';
import { installFakeClient, makeDoc, type FakeClient } from '../test/fakeClient';
import { useChat } from '../stores/chat';
import { useDocuments } from '../stores/documents';
import { useUi } from '../stores/ui';
import { App } from './App';
import { ErrorBoundary } from './ErrorBoundary';

let fake: FakeClient;
beforeEach(() => {
  fake = installFakeClient();
  useChat.setState(useChat.getInitialState());
  useUi.setState({ panel: 'ask', askingCollection: null, settingsOpen: false });
  const doc = makeDoc();
  useDocuments.setState({ docs: { doc1: doc }, details: { doc1: { ...doc, sections: [], pages: [], passageCount: 3, snapshots: 1 } },
    selectedId: 'doc1', loaded: true });
  fake.handle('conversations.list', () => []);
  fake.handle('documents.text', ({ charStart, charEnd }) => ({ text: 'x'.repeat(charEnd - charStart) }));
  fake.handle('ask', () => new Promise(() => undefined));
  fake.handle('cancel', () => ({ cancelled: true }));
  fake.handle('settings.get', () => ({ snapshotInterval: 32768, threads: 0, maxAnswerTokens: 200, temperature: 0, speculative: 2 }));
  fake.handle('engine.status', () => ({ state: 'ready', model: null, activeJob: null, queue: [], rssBytes: 0, dataDir: null }));
});

describe('App shortcuts', () => {
  it('Ctrl+K focuses the question box, Esc stops the answer, Ctrl+, opens settings', async () => {
    render(<App />);
    fireEvent.keyDown(window, { key: 'k', ctrlKey: true });
    const box = screen.getByRole('textbox', { name: 'Question about The Book' });
    await waitFor(() => expect(document.activeElement).toBe(box));
    fireEvent.change(box, { target: { value: 'Where is the key?' } });
    fireEvent.keyDown(box, { key: 'Enter' });
    expect(await screen.findByRole('button', { name: 'Stop' })).toBeTruthy();
    const requestId = useChat.getState().threads.doc1.requestId;
    await act(async () => { fireEvent.keyDown(window, { key: 'Escape' }); });
    expect(fake.calls.find((c) => c.method === 'cancel')?.params).toEqual({ requestId });
    fireEvent.keyDown(window, { key: ',', ctrlKey: true });
    expect(await screen.findByRole('dialog', { name: 'Settings' })).toBeTruthy();
  });
});

describe('ErrorBoundary', () => {
  it('shows a readable message instead of a blank area', () => {
    const Broken = () => {
      throw new Error('the outline is malformed');
    };
    const original = console.error;
    console.error = () => undefined;
    try {
      render(<ErrorBoundary area="reader"><Broken /></ErrorBoundary>);
    } finally {
      console.error = original;
    }
    expect(screen.getByRole('alert').textContent).toContain('The reader could not be shown');
    expect(screen.getByText('the outline is malformed')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Try again' })).toBeTruthy();
  });
});
