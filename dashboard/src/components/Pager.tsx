// Cursor pagination controls: a stack of cursors, the last one is the current page's.
import { useState } from 'preact/hooks';

export interface Cursors {
  cursor: string;
  page: number;
  back: () => void;
  forward: (next: string | null | undefined) => void;
  reset: () => void;
}

export function useCursors(): Cursors {
  const [stack, setStack] = useState<string[]>(['']);
  return {
    cursor: stack[stack.length - 1] ?? '',
    page: stack.length,
    back: () => setStack((c) => (c.length > 1 ? c.slice(0, -1) : c)),
    forward: (next) => {
      if (next) setStack((c) => [...c, next]);
    },
    reset: () => setStack((c) => (c.length === 1 && c[0] === '' ? c : [''])),
  };
}

export function Pager(props: {
  cursors: Cursors;
  next: string | null | undefined;
  label?: string;
  /** Button words and data-action names: Previous/Next (lists) or Newer/Older (ledgers). */
  words?: 'pages' | 'ledger';
}) {
  const ledger = props.words === 'ledger';
  return (
    <nav class="pager" aria-label={props.label ?? 'Pages'}>
      <button
        type="button"
        class="btn"
        disabled={props.cursors.page <= 1}
        data-action={ledger ? 'ledger-newer' : 'previous-page'}
        onClick={props.cursors.back}
      >
        {ledger ? 'Newer' : 'Previous'}
      </button>
      <span class="muted small">Page {props.cursors.page}</span>
      <button
        type="button"
        class="btn"
        disabled={!props.next}
        data-action={ledger ? 'ledger-older' : 'next-page'}
        onClick={() => props.cursors.forward(props.next)}
      >
        {ledger ? 'Older' : 'Next'}
      </button>
    </nav>
  );
}
