// The routes' types, taken from the generated OpenAPI types (src/api/openapi.d.ts).
import type { components } from './openapi';

type Schemas = components['schemas'];

// The customer's routes.
export type PurchaseResponse = Schemas['PurchaseResponse'];
export type Purchase = Schemas['Purchase'];
export type CheckoutWallet = NonNullable<PurchaseResponse['checkout_wallet']>;
export type AcceptedToken = CheckoutWallet['accepts'][number];
export type BillingBucket = Schemas['Bucket'];
export type HistoricalBillingRequest = Schemas['HistoricalBillingRequest'];
export type Interval = NonNullable<HistoricalBillingRequest['interval']>;
export type VerifyTopupResponse = Schemas['VerifyTopupResponse'];
export type PurchaseStatus = Purchase['status'];
export type LedgerItem = Schemas['LedgerItem'];
/** `GET /v1/purchase/{id}`'s `purchase.resource`: how to use what was bought, never a secret. */
export type ResourceInfo = Schemas['ResourceInfo'];
/** A payment to the deposit address that is not in the balance yet. */
export type Incoming = Schemas['Incoming'];
/** A credential as `GET /v1/purchase/{id}` lists it: kind, hint, created, never the secret. */
export type CredentialOut = Schemas['CredentialOut'];
/** `GET /v1/purchase/{id}/credentials/gateway_key`: the receipt's gateway key while it is kept. */
export type RevealedKey = Schemas['RevealedKey'];
/** A refund on the wire (the customer's and the console's). */
export type Refund = Schemas['Refund'];

// The admin API (`/v1/admin/…`, the vendor console).
export type AdminOverview = Schemas['AdminOverview'];
export type MoneyWindows = Schemas['MoneyWindows'];
/** A row of `GET /v1/admin/purchases`. */
export type AdminPurchase = Schemas['PurchaseRow'];
/** `GET /v1/admin/purchases/{id}`: the purchase with its resource, ledger head, deposits, sweeps, … */
export type AdminPurchaseDetail = Schemas['PurchaseDetail'];
/** A row of `GET /v1/admin/gas` (and the overview's `gas`). */
export type GasBalance = Schemas['GasWallet'];
export type ChainHealth = Schemas['ChainHealth'];
export type WatcherStatus = Schemas['WatcherStatus'];
export type AdjustmentRequest = Schemas['AdjustmentRequest'];
export type AdjustmentOut = Schemas['AdjustmentOut'];
export type StatusActionOut = Schemas['StatusActionOut'];
/** `POST /v1/admin/tokens` answers the secret once (`token`; null in a replay). */
export type CreatedToken = Schemas['TokenCreated'];
export type TokenRow = Schemas['TokenRow'];
export type SweepRow = Schemas['SweepRow'];
export type NotificationRow = Schemas['NotificationRow'];
export type CostImportRow = Schemas['CostImportRow'];
export type AuditRecord = Schemas['AuditRecord'];
/** A refund as `GET /v1/admin/refunds` lists it (and every refund action answers). */
export type AdminRefund = Refund;
export type DepositRow = Schemas['DepositRow'];
export type EndpointReport = Schemas['EndpointReport'];
export type CredentialKind = Schemas['CredentialKind'];
/** `POST /v1/admin/purchases/{id}/credentials/rotate`: the new secret, shown once. */
export type RotatedCredential = Schemas['RotatedCredential'];
/** `POST /v1/admin/chains/{chain_id}/rescan` and `GET /v1/admin/reconcile`. */
export type RescanOut = Schemas['RescanOut'];
export type ReconcileReport = Schemas['ReconcileReport'];
export type ReconcileMismatch = Schemas['Mismatch'];
/** `GET /v1/admin/me`: who is signed in (`id` null for ADMIN_TOKEN, the bootstrap owner). */
export type SignedInOperator = Schemas['SignedInOperator'];
export type OperatorRole = Schemas['OperatorRole'];
/** A row of `GET /v1/admin/operators`. */
export type OperatorRow = Schemas['OperatorRow'];
/** `POST /v1/admin/operators` answers the token once (null in a replay). */
export type OperatorCreated = Schemas['OperatorCreated'];
/** `GET /v1/admin/stats/daily` and one UTC day of it. */
export type DailyStats = Schemas['DailyStats'];
export type DailyItem = Schemas['DailyStat'];
