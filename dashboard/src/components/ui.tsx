// Small components both pages use. Every value shown from the API carries data-field="<API field>",
// and data-value="<the API's exact value>" where the display is formatted (SPEC §9, Dashboard).
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { formatUsd, formatUsdCents } from '../lib/money';

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
    <span class={props.class} data-field={field} data-value={value} title={`${formatUsd(value)} exactly`}>
      {formatUsdCents(value)}
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
