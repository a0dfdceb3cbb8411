import { fireEvent, render, screen, within } from '@testing-library/react';
import { beforeEach, describe, expect, it } from 'vitest';
import { installFakeClient, makeDoc } from '../test/fakeClient';
import { useCollections } from '../stores/collections';
import { useDocuments } from '../stores/documents';
import { useUi } from '../stores/ui';
import { Library, libraryGroups } from './Library';

const shelf = { id: 'c1', name: 'Shelf', createdAt: '' };

beforeEach(() => {
  installFakeClient();
  useCollections.setState({ collections: { c1: shelf } });
  useUi.setState({ askingCollection: null });
  useDocuments.setState({
    loaded: true, selectedId: 'a', uploads: 0, loadError: null,
    docs: {
      a: makeDoc({ id: 'a', title: 'Alpha', tokenCount: 1_234_567, createdAt: '2026-01-02' }),
      b: makeDoc({ id: 'b', title: 'Beta', collectionId: 'c1', status: 'ingesting', tokenCount: 1000, tokensIngested: 500, createdAt: '2026-01-01' }),
    },
  });
});

describe('Library', () => {
  it('groups documents by collection, loose ones first', () => {
    const groups = libraryGroups(Object.values(useDocuments.getState().docs), [shelf]);
    expect(groups.map((g) => [g.collection?.name ?? null, g.docs.map((d) => d.id)])).toEqual([[null, ['a']], ['Shelf', ['b']]]);
  });

  it('lists each document with its size in tokens and status, and selects on click', () => {
    render(<Library />);
    const alpha = screen.getByRole('button', { name: /^Alpha/ });
    expect(alpha.textContent).toContain('1.2M tokens');
    expect(alpha.textContent).toContain('Ready');
    expect(alpha.getAttribute('aria-current')).toBe('true');
    const shelfGroup = screen.getByRole('group', { name: 'Collection Shelf' });
    const beta = within(shelfGroup).getByRole('button', { name: /^Beta/ });
    expect(beta.textContent).toContain('Reading 50%');
    expect(within(beta).getByRole('progressbar')).toBeTruthy();
    fireEvent.click(beta);
    expect(useDocuments.getState().selectedId).toBe('b');
  });

  it('asks a collection from its header', () => {
    render(<Library />);
    fireEvent.click(screen.getByRole('button', { name: 'Ask the collection Shelf' }));
    expect(useUi.getState().askingCollection).toBe('c1');
  });

  it('tells a first-time user what to do when the library is empty', () => {
    useDocuments.setState({ docs: {}, selectedId: null });
    useCollections.setState({ collections: {} });
    render(<Library />);
    expect(screen.getByText('Your library is empty.')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Open…' })).toBeTruthy();
  });
});
