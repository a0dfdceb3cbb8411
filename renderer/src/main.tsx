// Start-up: choose the transport, connect the stores to it, render. If no transport can be
// set up, say what to do instead of showing an empty window.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient } from './api/client';
import { setClient } from './api/current';
import { App } from './components/App';
import { ErrorBoundary } from './components/ErrorBoundary';
import { connectStores } from './events';
import { describeError } from './lib/errors';
import './styles/app.css';

function StartupError({ message }: { message: string }) {
  return (
    <div className="startup-error" role="alert">
      <h1>Folio could not start</h1>
      <p>{message}</p>
    </div>
  );
}

const root = createRoot(document.getElementById('root')!);
try {
  const client = createClient();
  setClient(client);
  connectStores(client);
  root.render(
    <StrictMode>
      <ErrorBoundary area="app">
        <App />
      </ErrorBoundary>
    </StrictMode>,
  );
} catch (error) {
  root.render(<StartupError message={describeError(error)} />);
}
