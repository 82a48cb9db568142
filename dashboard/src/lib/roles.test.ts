import { describe, expect, it } from 'vitest';
import { ACTIONS, can, requiredRole } from './roles';

describe('role gates', () => {
  it('viewers can do nothing but read', () => {
    for (const a of ACTIONS) expect(can('viewer', a), a).toBe(false);
  });

  it('operators act but do not manage operators or billing tokens', () => {
    for (const a of ACTIONS) {
      expect(can('operator', a), a).toBe(a !== 'manage-operators' && a !== 'manage-tokens');
    }
    expect(can('operator', 'refunds')).toBe(true);
    expect(can('operator', 'replace-tx')).toBe(true);
    expect(can('operator', 'rotate-credentials')).toBe(true);
  });

  it('owners can do everything', () => {
    for (const a of ACTIONS) expect(can('owner', a), a).toBe(true);
  });

  it('an unknown or missing role can do nothing', () => {
    for (const role of [null, undefined, '', 'admin', 'OWNER']) {
      for (const a of ACTIONS) expect(can(role, a)).toBe(false);
    }
  });

  it('matches the server: mutations need operator, operators and token writes need owner', () => {
    expect(requiredRole('adjust')).toBe('operator');
    expect(requiredRole('manage-tokens')).toBe('owner');
    expect(requiredRole('manage-operators')).toBe('owner');
  });
});
