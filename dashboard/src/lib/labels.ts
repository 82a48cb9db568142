// Words for the API's enumerated values the console shows (audit actions, statuses, channels).
// Unknown values fall back to the value itself with its separators as spaces, never hidden.

export const AUDIT_ACTION_TEXT: Record<string, string> = {
  'purchase.adjust': 'Adjusted the balance',
  'purchase.suspend': 'Suspended',
  'purchase.resume': 'Resumed',
  'purchase.delete': 'Deleted',
  'purchase.reprovision': 'Retried provisioning',
  'purchase.credentials_rotate': 'Rotated a credential',
  'sweep.retry': 'Retried a sweep',
  'sweep.bump': 'Bumped a sweep’s fee',
  'sweep.cancel': 'Cancelled a sweep transaction',
  'notification.retry': 'Retried a notification',
  'token.create': 'Created a billing token',
  'token.revoke': 'Revoked a billing token',
  'refund.approve': 'Approved a refund',
  'refund.reject': 'Rejected a refund',
  'refund.mark_paid': 'Marked a refund paid',
  'refund.retry': 'Retried a refund payout',
  'operator.create': 'Added an operator',
  'operator.revoke': 'Revoked an operator',
  'chain.rescan': 'Rescanned a chain',
};

export const DEPOSIT_STATUS_TEXT: Record<string, string> = {
  pending: 'Waiting for confirmations',
  confirmed: 'Confirmed',
  credited: 'Credited',
  reversed: 'Reversed (reorg)',
  unclaimed: 'Unclaimed',
};

export const NOTIFICATION_STATUS_TEXT: Record<string, string> = {
  pending: 'Pending',
  failed: 'Failed',
  delivered: 'Delivered',
  skipped: 'Skipped',
};

export const IMPORT_STATUS_TEXT: Record<string, string> = {
  running: 'Running',
  succeeded: 'Done',
  completed: 'Done',
  failed: 'Failed',
  partial: 'Partly done',
};

/** A word for VALUE from TABLE, else the value with `_`, `.` and `-` as spaces. */
export function label(table: Record<string, string>, value: string | null | undefined): string {
  if (value === null || value === undefined || value === '') return '—';
  return table[value] ?? value.replace(/[._-]+/g, ' ');
}
