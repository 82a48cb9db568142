// The one table both pages use: explicit columns (a label in words and how to show the cell), so
// nothing prints an API field name. At phone width each row becomes a card (styles/phone.css) with
// the column label beside each cell (data-label).
import type { ComponentChildren } from 'preact';

export interface Column<T> {
  label: string;
  cell: (row: T) => ComponentChildren;
  /** Right-aligned numbers. */
  num?: boolean;
}

export function Table<T>(props: {
  rows: T[];
  columns: Column<T>[];
  caption: string;
  rowKey: (row: T, index: number) => string;
  rowAttrs?: (row: T) => Record<string, string>;
  actions?: (row: T) => ComponentChildren;
  empty?: string;
  /** `data-table` of the table, for tests and styles. */
  name?: string;
}) {
  const { rows, columns } = props;
  if (rows.length === 0) return <p class="muted">{props.empty ?? 'Nothing here yet.'}</p>;
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={props.caption}>
      <table data-table={props.name}>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" key={c.label} class={c.num ? 'num' : undefined}>
                {c.label}
              </th>
            ))}
            {props.actions && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={props.rowKey(row, i)} {...(props.rowAttrs ? props.rowAttrs(row) : {})}>
              {columns.map((c) => (
                <td key={c.label} data-label={c.label} class={c.num ? 'num' : undefined}>
                  {/* One box per cell: at phone width the cell is a flex row of its label and this. */}
                  <div class="cell">{c.cell(row)}</div>
                </td>
              ))}
              {props.actions && (
                <td class="actions" data-label="Actions">
                  <div class="cell">{props.actions(row)}</div>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A list of labelled facts (label in words, value rendered by the caller). */
export function Facts(props: { items: [label: string, value: ComponentChildren][] }) {
  return (
    <dl class="kv">
      {props.items.map(([label, value]) => (
        <div key={label} class="kv-row">
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}
