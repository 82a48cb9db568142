// The console's data hooks: the admin API from context, a load that re-runs when its key changes,
// a cursor-paged list, and one idempotency key per user action.
import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import { ApiError, errorText, newIdempotencyKey } from '../lib/api';
import type { AdminApi } from '../api/admin';
import type { Page } from '../api/handwritten';
import { type Cursors, useCursors } from '../components/Pager';

export const AdminContext = createContext<AdminApi | null>(null);

export function useAdmin(): AdminApi {
  const api = useContext(AdminContext);
  if (!api) throw new Error('useAdmin outside the signed-in console');
  return api;
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  reload: () => void;
  setData: (d: T) => void;
}

/** Runs `load` when `key` changes (null: not now); a 404 names the missing route. */
export function useLoad<T>(key: string | null, load: () => Promise<T>): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (key === null) return;
    let live = true;
    setError(null);
    load()
      .then((d) => live && setData(d))
      .catch((e: unknown) => live && setError(e instanceof ApiError && e.status === 404 ? `${errorText(e)} (${key})` : errorText(e)));
    return () => {
      live = false;
    };
    // `load` is a new closure every render; `key` says when to fetch.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, tick]);
  return { data, error, reload: () => setTick((t) => t + 1), setData };
}

/** A cursor-paged list: back to the first page when `key` (the filters) changes. */
export function useList<T>(key: string, load: (cursor: string) => Promise<Page<T>>): Loaded<Page<T>> & { cursors: Cursors } {
  const cursors = useCursors();
  useEffect(() => cursors.reset(), [key]);
  const loaded = useLoad(`${key}#${cursors.cursor}`, () => load(cursors.cursor));
  return { ...loaded, cursors };
}

/** One action's idempotency key, kept until it succeeds (a retry after a network error reuses it). */
export function useActionKey(): [string, () => void] {
  const [key, setKey] = useState(newIdempotencyKey);
  return [key, () => setKey(newIdempotencyKey())];
}
