import { describe, expect, it } from 'vitest';
import { canRetryNotification, purchaseButtons, refundButtons, rotatableKinds, sweepButtons } from './gates';

describe('role gates of the action buttons', () => {
  it('refunds: by status for operators and owners, none for viewers', () => {
    expect(refundButtons('requested', 'operator')).toEqual(['approve', 'reject']);
    expect(refundButtons('approved', 'owner')).toEqual(['reject', 'mark-paid']);
    expect(refundButtons('failed', 'operator')).toEqual(['reject', 'retry', 'mark-paid']);
    expect(refundButtons('paid', 'owner')).toEqual([]);
    for (const s of ['requested', 'approved', 'failed']) expect(refundButtons(s, 'viewer')).toEqual([]);
    expect(refundButtons('requested', undefined)).toEqual([]);
    // A payout signed and not mined: bump or cancel it (operators and owners).
    expect(refundButtons('paying', 'operator', { replaceable: true })).toEqual(['bump', 'cancel-payout']);
    expect(refundButtons('paying', 'operator', { replaceable: false })).toEqual([]);
    expect(refundButtons('paying', 'operator', null)).toEqual([]);
    expect(refundButtons('paying', 'viewer', { replaceable: true })).toEqual([]);
  });

  it('sweeps: retry a failed one, bump or cancel a replaceable one; nothing for viewers', () => {
    expect(sweepButtons({ status: 'failed', retryable: true }, 'operator')).toEqual(['retry']);
    expect(sweepButtons({ status: 'broadcast', retryable: false, replaceable: true }, 'operator')).toEqual(['bump', 'cancel']);
    expect(sweepButtons({ status: 'confirmed', retryable: false, replaceable: false }, 'owner')).toEqual([]);
    expect(sweepButtons({ status: 'failed', retryable: true }, 'viewer')).toEqual([]);
    expect(sweepButtons({ status: 'broadcast', replaceable: true }, 'viewer')).toEqual([]);
  });

  it('notifications: retry when retryable, not for viewers', () => {
    expect(canRetryNotification({ retryable: true }, 'operator')).toBe(true);
    expect(canRetryNotification({ retryable: false }, 'owner')).toBe(false);
    expect(canRetryNotification({ retryable: true }, 'viewer')).toBe(false);
  });

  it('a purchase: every action for operators, re-provision only after a failed setup, none for viewers', () => {
    expect(purchaseButtons({ status: 'active', resource: { status: 'ready' } }, 'operator')).toEqual([
      'adjust',
      'suspend',
      'resume',
      'delete',
      'rotate',
    ]);
    expect(purchaseButtons({ status: 'failed', resource: { status: 'failed' } }, 'operator')).toContain('reprovision');
    expect(purchaseButtons({ status: 'active' }, 'viewer')).toEqual([]);
    expect(purchaseButtons({ status: 'deleted' }, 'owner')).toEqual([]);
  });

  it('rotation offers the credentials the resource has', () => {
    expect(rotatableKinds('gemini')).toEqual(['gateway_key', 'customer_key']);
    expect(rotatableKinds('s3')).toEqual(['s3_access_key', 'customer_key']);
    expect(rotatableKinds(undefined)).toEqual(['customer_key']);
  });
});
