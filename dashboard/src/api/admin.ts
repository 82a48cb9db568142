// The admin API (`/v1/admin/…`) as typed calls, one per route the console uses. `call` adds the
// operator's bearer token (and signs out on 401); every write sends an `Idempotency-Key`.
import type { Page } from './handwritten';
import type {
  AdjustmentOut,
  AdminOverview,
  AdminPurchase,
  AdminPurchaseDetail,
  AdminRefund,
  AuditRecord,
  CostImportRow,
  CreatedToken,
  CredentialKind,
  DailyStats,
  GasBalance,
  LedgerItem,
  NotificationRow,
  OperatorCreated,
  OperatorRole,
  OperatorRow,
  ReconcileReport,
  RescanOut,
  RotatedCredential,
  SignedInOperator,
  StatusActionOut,
  SweepRow,
  TokenRow,
} from './types';
import type { S3UsageView } from '../components/S3Estimate';

export interface CallOptions {
  method?: 'GET' | 'POST' | 'DELETE';
  body?: unknown;
  idempotencyKey?: string;
}
export type Call = <T>(path: string, opts?: CallOptions) => Promise<T>;

/** A query string of the non-empty values (`?a=1&b=2`, or '' when none). */
export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

const enc = encodeURIComponent;

export interface PurchaseFilters {
  q?: string;
  status?: string;
  offer_id?: string;
  sort?: string;
  order?: string;
}

export type StatusAction = 'suspend' | 'resume' | 'delete';
export type RefundAction = 'approve' | 'reject' | 'mark-paid' | 'retry' | 'bump' | 'cancel-payout';
export type SweepAction = 'retry' | 'bump' | 'cancel';

/** Every admin call the console makes, typed by the generated OpenAPI types. */
export function adminApi(call: Call) {
  const post = <T>(path: string, key: string, body: unknown = {}) =>
    call<T>(path, { method: 'POST', body, idempotencyKey: key });
  return {
    overview: () => call<AdminOverview>('/v1/admin/overview'),
    purchases: (f: PurchaseFilters, cursor: string, limit = 50) =>
      call<Page<AdminPurchase>>(`/v1/admin/purchases${query({ ...f, cursor, limit })}`),
    purchase: (id: string) => call<AdminPurchaseDetail>(`/v1/admin/purchases/${enc(id)}`),
    ledger: (id: string, cursor: string, limit = 50) =>
      call<Page<LedgerItem>>(`/v1/admin/purchases/${enc(id)}/ledger${query({ limit, cursor })}`),
    s3Usage: (id: string) => call<S3UsageView>(`/v1/admin/purchases/${enc(id)}/s3-usage`),
    adjust: (id: string, amountUsd: string, reason: string, key: string) =>
      post<AdjustmentOut>(`/v1/admin/purchases/${enc(id)}/adjustments`, key, {
        amount_usd: amountUsd,
        reason,
        idempotency_key: key,
      }),
    statusAction: (id: string, action: StatusAction, body: Record<string, string>, key: string) =>
      post<StatusActionOut>(`/v1/admin/purchases/${enc(id)}/${action}`, key, body),
    sweeps: (status: string, cursor: string, limit = 50) =>
      call<Page<SweepRow>>(`/v1/admin/sweeps${query({ status, cursor, limit })}`),
    sweepAction: (id: number | string, action: SweepAction, key: string) =>
      post<unknown>(`/v1/admin/sweeps/${enc(String(id))}/${action}`, key),
    refunds: (status: string, cursor: string, limit = 50) =>
      call<Page<AdminRefund>>(`/v1/admin/refunds${query({ status, cursor, limit })}`),
    refundAction: (id: string, action: RefundAction, body: Record<string, unknown>, key: string) =>
      post<AdminRefund>(`/v1/admin/refunds/${enc(id)}/${action}`, key, body),
    notifications: (status: string, cursor: string, limit = 50) =>
      call<Page<NotificationRow>>(`/v1/admin/notifications${query({ status, cursor, limit })}`),
    retryNotification: (id: number | string, key: string) =>
      post<unknown>(`/v1/admin/notifications/${enc(String(id))}/retry`, key),
    costImports: (cursor: string, limit = 50) =>
      call<Page<CostImportRow>>(`/v1/admin/cost-imports${query({ cursor, limit })}`),
    tokens: (cursor: string, limit = 100) => call<Page<TokenRow>>(`/v1/admin/tokens${query({ cursor, limit })}`),
    createToken: (label: string, key: string) =>
      post<CreatedToken>('/v1/admin/tokens', key, { label, idempotency_key: key }),
    revokeToken: (id: number | string, key: string) =>
      call<unknown>(`/v1/admin/tokens/${enc(String(id))}`, { method: 'DELETE', idempotencyKey: key }),
    gas: () => call<Page<GasBalance> | GasBalance[]>('/v1/admin/gas'),
    me: () => call<SignedInOperator>('/v1/admin/me'),
    daily: (days: number) => call<DailyStats>(`/v1/admin/stats/daily${query({ days })}`),
    operators: () => call<Page<OperatorRow>>('/v1/admin/operators'),
    createOperator: (name: string, role: OperatorRole, key: string) =>
      post<OperatorCreated>('/v1/admin/operators', key, { name, role, idempotency_key: key }),
    revokeOperator: (id: number, key: string) => post<OperatorRow>(`/v1/admin/operators/${id}/revoke`, key),
    rescan: (chainId: number, fromBlock: number, toBlock: number | null, key: string) =>
      post<RescanOut>(`/v1/admin/chains/${chainId}/rescan`, key, {
        from_block: fromBlock,
        ...(toBlock === null ? {} : { to_block: toBlock }),
        idempotency_key: key,
      }),
    reconcile: () => call<ReconcileReport>('/v1/admin/reconcile'),
    reprovision: (id: string, key: string) => post<unknown>(`/v1/admin/purchases/${enc(id)}/reprovision`, key),
    rotateCredential: (id: string, kind: CredentialKind, key: string) =>
      post<RotatedCredential>(`/v1/admin/purchases/${enc(id)}/credentials/rotate`, key, { kind, idempotency_key: key }),
    audit: (filter: { action?: string; target_type?: string; target_id?: string; operator_name?: string }, cursor: string, limit = 50) =>
      call<Page<AuditRecord>>(`/v1/admin/audit${query({ ...filter, cursor, limit })}`),
  };
}

export type AdminApi = ReturnType<typeof adminApi>;
