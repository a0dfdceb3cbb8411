// Keyboard shortcuts: Ctrl/Cmd+O open, Ctrl/Cmd+K ask, Ctrl/Cmd+, settings, Esc stop.
export type ShortcutAction = 'open' | 'ask' | 'settings' | 'stop';

export function shortcutFor(event: Pick<KeyboardEvent, 'key' | 'ctrlKey' | 'metaKey' | 'altKey' | 'shiftKey'>,
                            isMac: boolean): ShortcutAction | null {
  const mod = isMac ? event.metaKey && !event.ctrlKey : event.ctrlKey && !event.metaKey;
  if (event.key === 'Escape' && !event.ctrlKey && !event.metaKey && !event.altKey) return 'stop';
  if (!mod || event.altKey || event.shiftKey) return null;
  const key = event.key.toLowerCase();
  if (key === 'o') return 'open';
  if (key === 'k') return 'ask';
  if (key === ',') return 'settings';
  return null;
}

export function isMacPlatform(): boolean {
  const nav = navigator as Navigator & { userAgentData?: { platform?: string } };
  return /mac/i.test(nav.userAgentData?.platform ?? navigator.platform ?? '');
}

/** The shortcut as the person types it on this platform ("Ctrl+O", "⌘O"). */
export function shortcutLabel(key: string, isMac = isMacPlatform()): string {
  return isMac ? `⌘${key.toUpperCase()}` : `Ctrl+${key.toUpperCase()}`;
}
