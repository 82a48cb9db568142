// Who is signed in to the console and what their role lets them do (lib/roles.ts).
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { SignedInOperator } from '../api/types';
import { type Action, can } from '../lib/roles';

export const SessionContext = createContext<SignedInOperator | null>(null);

export function useSession(): SignedInOperator | null {
  return useContext(SessionContext);
}

/** Whether the signed-in operator may do `action` (false until the server said who it is). */
export function useCan(action: Action): boolean {
  return can(useSession()?.role, action);
}
