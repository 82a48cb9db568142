// The customer routes' types, taken from the generated OpenAPI types (src/api/openapi.d.ts).
import type { components } from './openapi';

type Schemas = components['schemas'];
export type PurchaseResponse = Schemas['PurchaseResponse'];
export type Purchase = Schemas['Purchase'];
export type CheckoutWallet = NonNullable<PurchaseResponse['checkout_wallet']>;
export type AcceptedToken = CheckoutWallet['accepts'][number];
export type BillingBucket = Schemas['BillingBucket'];
export type HistoricalBillingRequest = Schemas['HistoricalBillingRequest'];
export type Interval = HistoricalBillingRequest['interval'];
export type VerifyTopupResponse = Schemas['VerifyTopupResponse'];
export type PurchaseStatus = Purchase['status'];
