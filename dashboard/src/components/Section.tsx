// A titled card, a loading line (or the error instead), a status filter and an action's message.
import type { ComponentChildren } from 'preact';
import { Alert } from './ui';

export function Section(props: { title: string; children: ComponentChildren; id?: string; section?: string }) {
  const id = props.id ?? `h-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section class="card" aria-labelledby={id} data-section={props.section}>
      <h2 id={id}>{props.title}</h2>
      {props.children}
    </section>
  );
}

export function Loading(props: { error: string | null; what: string }) {
  return props.error ? <Alert tone="error">{props.error}</Alert> : <p class="muted">Loading {props.what}…</p>;
}

export interface Message {
  tone: 'ok' | 'error';
  text: string;
}

/** The result of the last action, announced to screen readers. */
export function ActionMessage(props: { message: Message | null }) {
  return <div aria-live="polite">{props.message && <Alert tone={props.message.tone}>{props.message.text}</Alert>}</div>;
}

/** A status select; options are [value, label in words] ('' = any). */
export function StatusFilter(props: { value: string; onChange: (v: string) => void; options: [string, string][] }) {
  return (
    <label class="form-field card">
      <span>Status</span>
      <select name="status" value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
        {props.options.map(([value, label]) => (
          <option key={value} value={value}>
            {label}
          </option>
        ))}
      </select>
    </label>
  );
}
