// Which action buttons a row shows, from its state and the signed-in role (lib/roles.ts). The
// views render exactly these, so these functions are what the role-gate tests check.
import type { CredentialKind } from '../api/types';
import { can } from './roles';

type RoleLike = string | null | undefined;

export type RefundButton = 'approve' | 'reject' | 'retry' | 'mark-paid' | 'bump' | 'cancel-payout';

/** A refund's buttons; a payout transaction signed and not mined (`payout.replaceable`) can be
 * bumped or cancelled (`/v1/admin/refunds/{id}/bump|cancel-payout`). */
export function refundButtons(status: string, role: RoleLike, payout?: { replaceable?: boolean } | null): RefundButton[] {
  if (!can(role, 'refunds')) return [];
  const out: RefundButton[] = [];
  if (status === 'requested') out.push('approve');
  if (['requested', 'approved', 'failed'].includes(status)) out.push('reject');
  if (status === 'failed') out.push('retry');
  if (['approved', 'failed'].includes(status)) out.push('mark-paid');
  if (status === 'paying' && payout?.replaceable === true && can(role, 'replace-tx')) out.push('bump', 'cancel-payout');
  return out;
}

export type SweepButton = 'retry' | 'bump' | 'cancel';

export function sweepButtons(s: { status: string; retryable?: boolean; replaceable?: boolean }, role: RoleLike): SweepButton[] {
  if (s.retryable === true || s.status === 'failed') return can(role, 'retry-sweep') ? ['retry'] : [];
  if (s.replaceable === true) return can(role, 'replace-tx') ? ['bump', 'cancel'] : [];
  return [];
}

export function canRetryNotification(n: { retryable: boolean }, role: RoleLike): boolean {
  return n.retryable && can(role, 'retry-notification');
}

export type PurchaseButton = 'adjust' | 'suspend' | 'resume' | 'delete' | 'reprovision' | 'rotate';

export function purchaseButtons(p: { status: string; resource?: { status?: string } | null }, role: RoleLike): PurchaseButton[] {
  const out: PurchaseButton[] = [];
  if (p.status === 'deleted') return out;
  if (can(role, 'adjust')) out.push('adjust');
  if (can(role, 'change-status')) out.push('suspend', 'resume');
  if (can(role, 'delete')) out.push('delete');
  if (can(role, 'reprovision') && (p.status === 'failed' || p.resource?.status === 'failed')) out.push('reprovision');
  if (can(role, 'rotate-credentials')) out.push('rotate');
  return out;
}

/** The credentials an operator can rotate for a purchase, by its resource's provider. */
export function rotatableKinds(provider: string | null | undefined): CredentialKind[] {
  if (provider === 'gemini') return ['gateway_key', 'customer_key'];
  if (provider === 's3') return ['s3_access_key', 'customer_key'];
  return ['customer_key'];
}
