// A refund's payout transaction as the server signed it (SPEC §9 "Chains that recover by
// themselves"): its nonce, replacements, whether it is stuck at the chain's fee cap, an operator's
// pending request, and what it cost once mined.
import type { AdminRefund } from '../../api/types';
import { Field } from '../../components/ui';
import { Time } from '../../components/values';
import { formatNative } from '../../lib/units';

export function RefundPayout(props: { r: AdminRefund }) {
  const { r } = props;
  const p = r.payout;
  if (!p) return null;
  return (
    <div class="muted small" data-section="payout">
      payout nonce <Field field="nonce" value={p.nonce} />
      {p.replacements > 0 && (
        <>
          {' '}
          · re-signed <Field field="replacements" value={p.replacements} /> {p.replacements === 1 ? 'time' : 'times'}
        </>
      )}
      {p.max_fee_per_gas_wei && (
        <>
          {' '}
          · max fee <Field field="max_fee_per_gas_wei" value={p.max_fee_per_gas_wei}>{formatNative(p.max_fee_per_gas_wei, r.chain_id)}</Field>/gas
        </>
      )}
      {p.at_fee_cap && (
        <>
          {' '}
          · <Field field="at_fee_cap" value={p.at_fee_cap}>at the chain's fee cap</Field>
        </>
      )}
      {p.stuck_at && (
        <div>
          <span class="badge badge-warn">Stuck</span> since <Time field="stuck_at" value={p.stuck_at} />: not mined at the highest
          fee the server pays by itself. Bump it (past the cap) or cancel it.
        </div>
      )}
      {p.operator_action && (
        <div>
          <Field field="operator_action" value={p.operator_action}>
            {p.operator_action === 'bump' ? 'Bump requested' : 'Cancel requested'}
          </Field>
          : the payout job acts within seconds.
        </div>
      )}
      {p.cancelled && <div>Cancelled: a 0-value transfer replaced it; nothing was paid.</div>}
      {p.fee_wei && (
        <div>
          gas paid <Field field="fee_wei" value={p.fee_wei}>{formatNative(p.fee_wei, r.chain_id)}</Field>
        </div>
      )}
    </div>
  );
}
