import { describe, expect, it } from 'vitest';
import { shortcutFor, shortcutLabel } from './shortcuts';

const key = (k: string, mods: Partial<Record<'ctrlKey' | 'metaKey' | 'altKey' | 'shiftKey', boolean>> = {}) =>
  ({ key: k, ctrlKey: false, metaKey: false, altKey: false, shiftKey: false, ...mods });

describe('shortcuts', () => {
  it('maps Ctrl on Linux and Windows, Cmd on macOS', () => {
    expect(shortcutFor(key('o', { ctrlKey: true }), false)).toBe('open');
    expect(shortcutFor(key('K', { ctrlKey: true }), false)).toBe('ask');
    expect(shortcutFor(key('o', { metaKey: true }), false)).toBeNull();
    expect(shortcutFor(key('o', { metaKey: true }), true)).toBe('open');
    expect(shortcutFor(key('k', { ctrlKey: true }), true)).toBeNull();
    expect(shortcutFor(key(',', { ctrlKey: true }), false)).toBe('settings');
  });

  it('stops with Esc, leaves other keys alone', () => {
    expect(shortcutFor(key('Escape'), false)).toBe('stop');
    expect(shortcutFor(key('o'), false)).toBeNull();
    expect(shortcutFor(key('o', { ctrlKey: true, shiftKey: true }), false)).toBeNull();
  });

  it('labels per platform', () => {
    expect(shortcutLabel('o', false)).toBe('Ctrl+O');
    expect(shortcutLabel('k', true)).toBe('⌘K');
  });
});
