// What the loaded model is: size, prediction heads, state size, vocabulary, backend.
import type { ModelDescription } from '../../../electron/api/types';
import { formatBytes, formatCount } from '../lib/format';

export function ModelCard({ model }: { model: ModelDescription }) {
  return (
    <section className="model-card" aria-label="Model">
      <h3>{model.name}</h3>
      <dl>
        <div><dt>Parameters</dt><dd>{formatCount(model.parameters)}</dd></div>
        <div><dt>Prediction heads</dt><dd>{model.predictionHeads}</dd></div>
        <div><dt>State size</dt><dd>{formatBytes(model.stateBytes)}<span className="hint"> per document, whatever its length</span></dd></div>
        <div><dt>Vocabulary</dt><dd>{model.vocabulary.toLocaleString()} tokens</dd></div>
        <div><dt>Chunk</dt><dd>{model.chunkSize.toLocaleString()} tokens</dd></div>
        <div><dt>Backend</dt><dd>{model.backend.toUpperCase()}, {model.threads} {model.threads === 1 ? 'thread' : 'threads'}</dd></div>
        <div><dt>Fingerprint</dt><dd><code>{model.fingerprint}</code></dd></div>
        <div className="wide"><dt>File</dt><dd><code className="path">{model.path}</code></dd></div>
      </dl>
    </section>
  );
}
