// The newer fields of `GET /v1/purchase/{id}` (OpenAPI: ResourceInfo, Incoming), spelled out here
// until src/api/openapi.d.ts is regenerated with them; structurally the same as the generated ones,
// so the intersection below stays valid afterwards.
import type { PurchaseResponse } from '../api/types';

/** How to use what was bought; never a secret. `null` while the resource is not ready. */
export interface ResourceInfo {
  /** The provider kind: `s3`, `gemini`. */
  kind: string;
  bucket?: string | null;
  region?: string | null;
  endpoint?: string | null;
  /** Gemini: the server's public base URL (the gateway's `/v1beta` API is under it). */
  gateway_base_url?: string | null;
}

/** A payment to the deposit address that is not in the balance yet. */
export interface Incoming {
  chain_id: number;
  token_symbol: string;
  amount_usd: string;
  tx_hash: string;
  /** `pending` (below the chain's confirmation depth) or `confirmed` (being credited). */
  status: string;
  confirmations?: number | null;
  required_confirmations: number;
  explorer_url?: string | null;
}

export type PurchaseView = PurchaseResponse & {
  purchase: PurchaseResponse['purchase'] & { resource?: ResourceInfo | null };
  pending_deposits?: Incoming[];
};
