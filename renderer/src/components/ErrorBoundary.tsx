// Shows a readable message instead of a blank area when a part of the UI fails to render.
import { Component, type ErrorInfo, type ReactNode } from 'react';

interface Props {
  area: string;
  children: ReactNode;
}

interface State {
  error: Error | null;
}

export class ErrorBoundary extends Component<Props, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error(`Folio: the ${this.props.area} failed`, error, info.componentStack);
  }

  render(): ReactNode {
    const { error } = this.state;
    if (!error) return this.props.children;
    return (
      <div className="failure" role="alert">
        <h2>The {this.props.area} could not be shown</h2>
        <p>{error.message || String(error)}</p>
        <div className="row">
          <button type="button" onClick={() => this.setState({ error: null })}>Try again</button>
          <button type="button" className="secondary" onClick={() => window.location.reload()}>Reload Folio</button>
        </div>
      </div>
    );
  }
}
