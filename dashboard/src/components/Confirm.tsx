// A destructive action behind a confirmation: the first click asks (in the page, not a browser
// dialog), "Confirm" runs it, "Keep" closes the question. Focus moves to the question and back.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export function ConfirmButton(props: {
  /** data-action of the button; the confirm button is data-action="confirm". */
  action: string;
  /** data-kind of the button and of its question, when one view has several (one per kind). */
  kind?: string;
  label: ComponentChildren;
  question: ComponentChildren;
  confirmLabel?: string;
  danger?: boolean;
  small?: boolean;
  disabled?: boolean;
  title?: string;
  onConfirm: () => void | Promise<void>;
}) {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (open) box.current?.querySelector<HTMLButtonElement>('[data-action="confirm"]')?.focus();
  }, [open]);
  const size = props.small === false ? '' : ' btn-small';
  if (!open) {
    return (
      <button
        type="button"
        class={`btn${size}${props.danger ? ' btn-danger' : ''}`}
        data-action={props.action}
        data-kind={props.kind}
        disabled={props.disabled}
        title={props.title}
        onClick={() => setOpen(true)}
      >
        {props.label}
      </button>
    );
  }
  return (
    <div class="confirm" role="group" aria-label="Confirm" ref={box} data-confirm-for={props.action} data-kind={props.kind}>
      <p class="small">{props.question}</p>
      <div class="actions-row">
        <button
          type="button"
          class={`btn${size} ${props.danger ? 'btn-danger' : 'btn-primary'}`}
          data-action="confirm"
          disabled={props.disabled}
          onClick={() => {
            setOpen(false);
            void props.onConfirm();
          }}
        >
          {props.confirmLabel ?? 'Confirm'}
        </button>
        <button type="button" class={`btn${size}`} data-action="keep" onClick={() => setOpen(false)}>
          Keep
        </button>
      </div>
    </div>
  );
}
