// What each operator role may do in the console (SPEC §9 "Operators"), mirroring the server's rule
// (src/admin/operators.rs `required_role`): viewers read; operators also act (adjust, suspend,
// refunds, retries, rescans, re-provision, credential rotation); owners also manage operators and
// billing tokens. The console hides what the role cannot do; the server refuses it anyway (403
// `forbidden_role`).

export type Role = 'viewer' | 'operator' | 'owner';

export type Action =
  | 'adjust'
  | 'change-status'
  | 'delete'
  | 'refunds'
  | 'retry-sweep'
  | 'replace-tx'
  | 'retry-notification'
  | 'rescan'
  | 'reprovision'
  | 'rotate-credentials'
  | 'manage-tokens'
  | 'manage-operators';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, owner: 2 };

const NEEDS: Record<Action, Role> = {
  adjust: 'operator',
  'change-status': 'operator',
  delete: 'operator',
  refunds: 'operator',
  'retry-sweep': 'operator',
  'replace-tx': 'operator',
  'retry-notification': 'operator',
  rescan: 'operator',
  reprovision: 'operator',
  'rotate-credentials': 'operator',
  'manage-tokens': 'owner',
  'manage-operators': 'owner',
};

export const ACTIONS = Object.keys(NEEDS) as Action[];

/** The role an action needs. */
export function requiredRole(action: Action): Role {
  return NEEDS[action];
}

/** Whether `role` may do `action`; an unknown role may do nothing. */
export function can(role: Role | string | null | undefined, action: Action): boolean {
  if (role !== 'viewer' && role !== 'operator' && role !== 'owner') return false;
  return RANK[role] >= RANK[NEEDS[action]];
}

export const ROLE_TEXT: Record<Role, string> = {
  viewer: 'Viewer (reads)',
  operator: 'Operator (acts)',
  owner: 'Owner (also manages operators and billing tokens)',
};
