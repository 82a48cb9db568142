// The customer page's calls, with the customer key from the page's link (Bearer). Typed by the
// generated OpenAPI types.
import { api } from '../lib/api';
import type { Page } from './handwritten';
import type {
  BillingBucket,
  CredentialKind,
  HistoricalBillingRequest,
  LedgerItem,
  PurchaseResponse,
  RevealedKey,
  RotatedCredential,
  VerifyTopupResponse,
} from './types';
import type { Credentials } from '../customer/credentials';
import type { S3UsageView } from '../components/S3Estimate';

const base = (c: Credentials) => `/v1/purchase/${encodeURIComponent(c.purchaseId)}`;

export function purchase(c: Credentials): Promise<PurchaseResponse> {
  return api<PurchaseResponse>(base(c), { token: c.key });
}

export function historicalBilling(c: Credentials, body: HistoricalBillingRequest, signal?: AbortSignal): Promise<BillingBucket[]> {
  return api<BillingBucket[]>(`${base(c)}/historical-billing`, { token: c.key, body, signal });
}

export function ledger(c: Credentials, cursor: string | null, limit = 20): Promise<Page<LedgerItem>> {
  const q = new URLSearchParams({ limit: String(limit) });
  if (cursor) q.set('cursor', cursor);
  return api<Page<LedgerItem>>(`${base(c)}/ledger?${q}`, { token: c.key });
}

export function verifyTopup(c: Credentials): Promise<VerifyTopupResponse> {
  return api<VerifyTopupResponse>(`${base(c)}/verify-topup`, { token: c.key, body: {} });
}

export function s3Usage(c: Credentials): Promise<S3UsageView> {
  return api<S3UsageView>(`${base(c)}/s3-usage`, { token: c.key });
}

/** The receipt's gateway key while it is kept (24 h, until replaced); 404 `credential_not_shown` after. */
export function gatewayKey(c: Credentials): Promise<RevealedKey> {
  return api<RevealedKey>(`${base(c)}/credentials/gateway_key`, { token: c.key });
}

/** A new credential in place of KIND's current one (which stops at once); its secret, shown once. */
export function rotateCredential(c: Credentials, kind: CredentialKind, idempotencyKey: string): Promise<RotatedCredential> {
  return api<RotatedCredential>(`${base(c)}/credentials/rotate`, { token: c.key, idempotencyKey, body: { kind } });
}
