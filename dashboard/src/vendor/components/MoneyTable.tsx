// Money in and usage billed over today, 7 and 30 days (the overview's `money`).
import type { MoneyWindows } from '../../api/types';
import { Money } from '../../components/ui';

const WINDOWS = [
  ['today', 'Today'],
  ['last_7_days', '7 days'],
  ['last_30_days', '30 days'],
] as const;

const FIELDS = [
  ['credited_usd', 'Money in'],
  ['usage_billed_usd', 'Usage billed'],
  ['adjustments_usd', 'Adjustments'],
] as const;

export function MoneyTable(props: { windows: MoneyWindows }) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label="Money in and usage billed">
      <table>
        <caption class="sr-only">Money in and usage billed per window</caption>
        <thead>
          <tr>
            <th scope="col">Window</th>
            {FIELDS.map(([f, label]) => (
              <th scope="col" class="num" key={f}>
                {label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {WINDOWS.map(([key, label]) => (
            <tr key={key} data-window={key}>
              <th scope="row">{label}</th>
              {FIELDS.map(([f, fieldLabel]) => (
                <td class="num" data-label={fieldLabel} key={f}>
                  <Money field={f} value={props.windows[key][f]} />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
