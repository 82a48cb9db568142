// How single API values are shown: times, hashes and addresses, transactions. Each keeps
// data-field="<API field>" and data-value="<the API's exact value>".
import { formatExactTime, formatRelative, shortHex, toDate } from '../lib/format';

/** A time from the API: how long ago in words, the exact time on hover. */
export function Time(props: { field: string; value: string | number | null | undefined }) {
  const raw = props.value === null || props.value === undefined ? '' : String(props.value);
  if (!raw) {
    return (
      <span data-field={props.field} data-value="">
        —
      </span>
    );
  }
  return (
    <time data-field={props.field} data-value={raw} dateTime={toDate(props.value)?.toISOString()} title={formatExactTime(props.value)}>
      {formatRelative(props.value)}
    </time>
  );
}

/** A long hex value (address, hash) shortened, the whole of it on hover. */
export function Hex(props: { field: string; value: string | null | undefined; keep?: number }) {
  if (!props.value) {
    return (
      <span data-field={props.field} data-value="">
        —
      </span>
    );
  }
  return (
    <span data-field={props.field} data-value={props.value}>
      <code title={props.value}>{shortHex(props.value, props.keep)}</code>
    </span>
  );
}

/** A transaction: a link to the block explorer when the server knows one. */
export function TxLink(props: { hash: string | null | undefined; url?: string | null; field?: string; prefix?: string }) {
  const field = props.field ?? 'tx_hash';
  if (!props.hash) return <span class="muted">—</span>;
  const text = `${props.prefix ?? ''}${shortHex(props.hash)}`;
  return props.url ? (
    <a href={props.url} rel="noreferrer" target="_blank" data-field={field} data-value={props.hash} title={props.hash}>
      {text}
      <span class="sr-only"> (opens the block explorer in a new tab)</span>
    </a>
  ) : (
    <code data-field={field} data-value={props.hash} title={props.hash}>
      {text}
    </code>
  );
}

/** A JSON payload folded away (notification payloads, import errors, audit details). */
export function Json(props: { field: string; value: unknown; summary?: string }) {
  if (props.value === null || props.value === undefined) return <span class="muted">—</span>;
  const text = JSON.stringify(props.value, null, 2);
  return (
    <details class="json-cell" data-field={props.field} data-value={JSON.stringify(props.value)}>
      <summary>{props.summary ?? 'Show'}</summary>
      <pre tabIndex={0}>
        <code>{text}</code>
      </pre>
    </details>
  );
}
