// Small components both pages use. Every value shown from the API carries data-field="<API field>",
// and data-value="<the API's exact value>" where the display is formatted (SPEC §9, Dashboard).
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { formatUsd } from './money';
import { formatTime, humanize, shortHex } from './format';

export function Money(props: { field: string; value: string | null | undefined; class?: string }) {
  const { field, value } = props;
  if (value === null || value === undefined) {
    return (
      <span class={props.class} data-field={field} data-value="">
        not set yet
      </span>
    );
  }
  return (
    <span class={props.class} data-field={field} data-value={value}>
      {formatUsd(value)}
    </span>
  );
}

export function Field(props: { field: string; value: unknown; children?: ComponentChildren; class?: string }) {
  const raw = props.value === null || props.value === undefined ? '' : String(props.value);
  return (
    <span class={props.class} data-field={props.field} data-value={raw}>
      {props.children ?? raw}
    </span>
  );
}

export const STATUS_TEXT: Record<string, { label: string; tone: string; meaning: string }> = {
  provisioning: { label: 'Setting up', tone: 'info', meaning: 'Payment received; your resource is being created. This takes a minute.' },
  active: { label: 'Active', tone: 'ok', meaning: 'Everything works. Usage is charged to your balance.' },
  low: { label: 'Balance low', tone: 'warn', meaning: 'Your balance is below the low threshold: top up soon to keep using it.' },
  critical: { label: 'Balance critical', tone: 'bad', meaning: 'Your balance is almost used up: top up now, or use will be suspended.' },
  suspended: { label: 'Suspended', tone: 'bad', meaning: 'Use is paused because the balance ran out. Your data is kept for now: top up to resume.' },
  deleted: { label: 'Deleted', tone: 'muted', meaning: 'The resource and its data were deleted after the grace period. A top up does not bring them back.' },
  failed: { label: 'Setup failed', tone: 'bad', meaning: 'Setting up your resource failed; it is retried and the vendor has been told. Your balance is intact: you can request a refund.' },
};

export function StatusBadge(props: { status: string }) {
  const s = STATUS_TEXT[props.status] ?? { label: props.status, tone: 'muted', meaning: '' };
  return (
    <span class={`badge badge-${s.tone}`} data-field="status" data-value={props.status}>
      {s.label}
    </span>
  );
}

export function CopyButton(props: { text: string; label: string; action?: string }) {
  const [done, setDone] = useState<'idle' | 'ok' | 'fail'>('idle');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.text);
      setDone('ok');
    } catch {
      // Clipboard refused (no permission / not a secure context): select the text for the person.
      setDone('fail');
    }
    window.setTimeout(() => setDone('idle'), 2500);
  };
  return (
    <button type="button" class="btn btn-small" data-action={props.action} onClick={copy}>
      {done === 'ok' ? 'Copied' : done === 'fail' ? 'Copy failed' : 'Copy'}
      <span class="sr-only">{` ${props.label}`}</span>
      <span class="sr-only" aria-live="polite">
        {done === 'ok' ? 'Copied to the clipboard' : ''}
      </span>
    </button>
  );
}

export function Alert(props: { tone?: 'error' | 'info' | 'ok' | 'warn'; children: ComponentChildren; title?: string }) {
  const tone = props.tone ?? 'info';
  return (
    <div class={`alert alert-${tone}`} role={tone === 'error' ? 'alert' : 'status'}>
      {props.title && <strong class="alert-title">{props.title}</strong>}
      <div>{props.children}</div>
    </div>
  );
}

/** A cell for any API value: USD amounts (…_usd, amount, balance) formatted, times as local times. */
export function Value(props: { field: string; value: unknown }) {
  const { field, value } = props;
  if (value === null || value === undefined) return <span data-field={field} data-value="">—</span>;
  if (typeof value === 'string' && /(_usd|^amount|_amount|balance)$/.test(field) && /^-?\d+(\.\d+)?$/.test(value)) {
    return <Money field={field} value={value} />;
  }
  if (/(_at|^at|time|date)$/.test(field) && (typeof value === 'number' || typeof value === 'string')) {
    return <Field field={field} value={value}>{formatTime(value)}</Field>;
  }
  if (typeof value === 'string' && /^0x[0-9a-fA-F]{40,}$/.test(value)) {
    return <Field field={field} value={value}><code title={value}>{shortHex(value)}</code></Field>;
  }
  if (typeof value === 'object') {
    // Payloads and details: folded, so tables stay readable.
    const text = JSON.stringify(value, null, 2);
    if (text.length <= 40) {
      return (
        <Field field={field} value={JSON.stringify(value)}>
          <code class="json">{JSON.stringify(value)}</code>
        </Field>
      );
    }
    return (
      <details class="json-cell" data-field={field} data-value={JSON.stringify(value)}>
        <summary>Show</summary>
        <pre tabIndex={0}>
          <code>{text}</code>
        </pre>
      </details>
    );
  }
  return <Field field={field} value={value} />;
}

/** A table of API rows; columns default to the keys of the rows. */
export function DataTable(props: {
  rows: Record<string, unknown>[];
  columns?: string[];
  caption: string;
  rowAttrs?: (row: Record<string, unknown>) => Record<string, string>;
  actions?: (row: Record<string, unknown>) => ComponentChildren;
  empty?: string;
}) {
  const { rows } = props;
  if (rows.length === 0) return <p class="muted">{props.empty ?? 'Nothing here yet.'}</p>;
  const columns =
    props.columns ??
    Array.from(
      rows.reduce((set, r) => {
        Object.keys(r).forEach((k) => set.add(k));
        return set;
      }, new Set<string>()),
    );
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={props.caption}>
      <table>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" key={c}>{humanize(c)}</th>
            ))}
            {props.actions && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={String(row.id ?? i)} {...(props.rowAttrs ? props.rowAttrs(row) : {})}>
              {columns.map((c) => (
                <td key={c} data-label={humanize(c)}>
                  <Value field={c} value={row[c]} />
                </td>
              ))}
              {props.actions && <td class="actions">{props.actions(row)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
