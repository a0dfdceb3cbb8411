// The server's access token arrives in the URL fragment (#token=...). It is kept in session
// storage, so a reload of this tab still works, and removed from the address bar.
const KEY = 'folio.token';

export function readToken(win: Window): string | null {
  const match = /(?:^#|&)token=([^&]+)/.exec(win.location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]);
    try {
      win.sessionStorage.setItem(KEY, token);
      win.history.replaceState(null, '', win.location.pathname + win.location.search);
    } catch {
      // Storage can be unavailable (private modes): the token still works for this page.
    }
    return token;
  }
  try {
    return win.sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}
