// A copyable code example, and a copyable fact (bucket, endpoint, …) of the resource.
import { CopyButton } from '../../components/ui';

export function Snippet(props: { id: string; label: string; code: string }) {
  return (
    <div class="snippet">
      <div class="snippet-head">
        <span id={props.id}>{props.label}</span>
        <CopyButton text={props.code} label={`the ${props.label} example`} />
      </div>
      <pre tabIndex={0} aria-labelledby={props.id}>
        <code>{props.code}</code>
      </pre>
    </div>
  );
}

export function FactRow(props: { label: string; field: string; value: string | null | undefined; copyLabel: string }) {
  return (
    <>
      <dt>{props.label}</dt>
      <dd class="fact-value">
        {props.value ? (
          <>
            <code data-field={props.field} data-value={props.value}>
              {props.value}
            </code>
            <CopyButton text={props.value} label={props.copyLabel} action={`copy-${props.field}`} />
          </>
        ) : (
          <span class="muted" data-field={props.field} data-value="">
            not given (the default)
          </span>
        )}
      </dd>
    </>
  );
}
