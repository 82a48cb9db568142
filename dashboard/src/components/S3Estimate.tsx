// An S3 purchase's spend between daily imports: today's hourly estimate, the last days' estimates
// beside the AWS figures that replaced them, and an offer limit that holds the purchase suspended.
// Used by the customer page (customer key) and the console's purchase page (operator token).
import { useEffect, useState } from 'preact/hooks';
import { errorText } from '../lib/api';
import { Alert, Field, Money } from './ui';

/** `GET /v1/purchase/{id}/s3-usage` and `GET /v1/admin/purchases/{id}/s3-usage`. */
export interface S3UsageView {
  today_estimated_usd: string;
  days: {
    day: string;
    estimated_usd: string;
    imported_usd?: string | null;
    egress_bytes: number;
    get_requests: number;
    put_requests: number;
    storage_bytes?: number | null;
  }[];
  limit?: string | null;
  limit_message?: string | null;
}

const GB = 1024 ** 3;

function gb(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '—';
  return `${(bytes / GB).toLocaleString(undefined, { maximumFractionDigits: 3 })} GB`;
}

/** `get` fetches a path with the page's credentials (customer key or operator token). */
export function S3EstimateCard(props: {
  path: string;
  get: (path: string) => Promise<S3UsageView>;
  reloadKey: unknown;
  console?: boolean;
}) {
  const [view, setView] = useState<S3UsageView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { get, path, reloadKey } = props;

  useEffect(() => {
    get(path)
      .then((v) => {
        setView(v);
        setError(null);
      })
      .catch((e: unknown) => setError(errorText(e)));
    // `get` changes identity with every render of the page; the path and reload key say when to fetch.
  }, [path, reloadKey]);

  return (
    <section class="card" aria-labelledby="s3-estimate-h" data-section="s3-estimate">
      <h2 id="s3-estimate-h">{props.console ? 'S3 estimates and imported costs' : "Today's estimated spend"}</h2>
      {error && <Alert tone="warn">{error}</Alert>}
      {view?.limit && (
        <Alert tone="error" title="Paused: usage limit passed">
          <span data-field="limit" data-value={view.limit}>
            {view.limit_message}
          </span>
        </Alert>
      )}
      {view && (
        <>
          <p>
            <Money field="today_estimated_usd" value={view.today_estimated_usd} class="big" /> so far today (UTC),
            estimated every hour from your bucket's requests and storage.
          </p>
          <p class="muted small" data-field="estimate_note">
            Once a day AWS's own figure for each day replaces that day's estimate: only the difference is charged
            (or credited back), never both.
          </p>
          {view.days.length > 0 && (
            <div class="table-wrap" tabIndex={0} role="region" aria-label="Estimates per day">
              <table>
                <caption class="sr-only">Estimated and AWS figures per day, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Day (UTC)</th>
                    <th scope="col">Estimated</th>
                    <th scope="col">AWS figure</th>
                    <th scope="col">Downloaded</th>
                    <th scope="col">Requests (GET / PUT)</th>
                    <th scope="col">Stored</th>
                  </tr>
                </thead>
                <tbody>
                  {view.days.map((d) => (
                    <tr key={d.day} data-day={d.day}>
                      <td>
                        <Field field="day" value={d.day} />
                      </td>
                      <td>
                        <Money field="estimated_usd" value={d.estimated_usd} />
                      </td>
                      <td>
                        {d.imported_usd ? (
                          <Money field="imported_usd" value={d.imported_usd} />
                        ) : (
                          <span class="muted" data-field="imported_usd" data-value="">
                            not yet
                          </span>
                        )}
                      </td>
                      <td>
                        <Field field="egress_bytes" value={d.egress_bytes}>
                          {gb(d.egress_bytes)}
                        </Field>
                      </td>
                      <td>
                        <Field field="get_requests" value={d.get_requests} /> /{' '}
                        <Field field="put_requests" value={d.put_requests} />
                      </td>
                      <td>
                        <Field field="storage_bytes" value={d.storage_bytes ?? ''}>
                          {gb(d.storage_bytes)}
                        </Field>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
