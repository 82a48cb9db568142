import { describe, expect, it } from 'vitest';
import { AUDIT_ACTION_TEXT, label } from './labels';

describe('labels', () => {
  it('says known values in words and unknown ones without separators', () => {
    expect(label(AUDIT_ACTION_TEXT, 'purchase.adjust')).toBe('Adjusted the balance');
    expect(label(AUDIT_ACTION_TEXT, 'purchase.something_new')).toBe('purchase something new');
    expect(label(AUDIT_ACTION_TEXT, null)).toBe('—');
  });
});
