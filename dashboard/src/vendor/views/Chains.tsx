// Chains: rescan a block range for deposits the watcher missed, and reconcile every deposit
// address's on-chain balance with what was recorded (SPEC §9 "Chains that recover by themselves").
import { useState } from 'preact/hooks';
import { errorText } from '../../lib/api';
import { formatToken } from '../../lib/units';
import type { GasBalance, ReconcileMismatch, ReconcileReport, RescanOut } from '../../api/types';
import { ActionMessage, Loading, type Message, Section } from '../../components/Section';
import { type Column, Table } from '../../components/Table';
import { Field } from '../../components/ui';
import { Hex, Time } from '../../components/values';
import { useActionKey, useAdmin, useLoad } from '../hooks';
import { useCan } from '../session';
import { RpcTable } from '../components/RpcTable';
import { WatcherPasses } from '../components/WatcherPasses';

const MISMATCH_COLUMNS: Column<ReconcileMismatch>[] = [
  { label: 'Chain', cell: (m) => <Field field="chain_id" value={m.chain_id}>{m.chain}</Field> },
  { label: 'Deposit address', cell: (m) => <Hex field="deposit_address" value={m.deposit_address} /> },
  { label: 'On chain', num: true, cell: (m) => <Field field="on_chain_units" value={m.on_chain_units}>{formatToken(m.on_chain_units, m.token)}</Field> },
  { label: 'Recorded', num: true, cell: (m) => <Field field="recorded_units" value={m.recorded_units}>{formatToken(m.recorded_units, m.token)}</Field> },
  { label: 'Difference', num: true, cell: (m) => <Field field="difference_units" value={m.difference_units}>{formatToken(m.difference_units, m.token)}</Field> },
  { label: 'At block', num: true, cell: (m) => <Field field="block" value={m.block} /> },
];

export function Chains() {
  const admin = useAdmin();
  const canRescan = useCan('rescan');
  const gas = useLoad('gas', admin.gas);
  const overview = useLoad('overview', admin.overview);
  const chains: GasBalance[] = gas.data ? (Array.isArray(gas.data) ? gas.data : gas.data.items) : [];
  const [message, setMessage] = useState<Message | null>(null);
  const [rescan, setRescan] = useState<RescanOut | null>(null);
  const [busy, setBusy] = useState(false);
  const [key, nextKey] = useActionKey();
  const [report, setReport] = useState<ReconcileReport | null>(null);
  const [checking, setChecking] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const chainId = Number(f.get('chain_id'));
    const from = Number(String(f.get('from_block') ?? '').trim());
    const toText = String(f.get('to_block') ?? '').trim();
    if (!Number.isSafeInteger(from) || from < 0 || (toText && !/^\d+$/.test(toText))) {
      setMessage({ tone: 'error', text: 'Blocks: whole numbers, the last one not before the first.' });
      return;
    }
    setBusy(true);
    setMessage(null);
    try {
      const out = await admin.rescan(chainId, from, toText ? Number(toText) : null, key);
      nextKey();
      setRescan(out);
      setMessage({ tone: 'ok', text: `Rescanned blocks ${out.from_block}–${out.to_block}: ${out.new_deposits} new deposit(s), ${out.credited} credited.` });
    } catch (err) {
      setMessage({ tone: 'error', text: errorText(err) });
    } finally {
      setBusy(false);
    }
  };
  const reconcile = async () => {
    setChecking(true);
    setMessage(null);
    try {
      setReport(await admin.reconcile());
    } catch (err) {
      setMessage({ tone: 'error', text: errorText(err) });
    } finally {
      setChecking(false);
    }
  };

  return (
    <>
      <h1>Chains</h1>
      <ActionMessage message={message} />
      <Section title="RPC endpoints and the deposit watcher" section="rpc">
        {overview.data ? (
          <>
            <RpcTable chains={overview.data.rpc} />
            <WatcherPasses chains={overview.data.watcher} />
            <p class="small muted">
              Endpoints come from the chains configuration (<code>RPC_ENDPOINT</code> or the chains file); one marked down is
              retried by itself and one answering another chain id is never used.
            </p>
          </>
        ) : (
          <Loading error={overview.error} what="the endpoints" />
        )}
      </Section>
      <Section title="Reconcile deposit addresses" section="reconcile">
        <p class="small muted">
          Compares every deposit address’s balance on chain with its recorded deposits less sweeps (also run daily). A
          difference means a missed or wrongly recorded transfer: rescan the blocks around it.
        </p>
        <div class="actions-row">
          <button type="button" class="btn btn-primary" data-action="reconcile" disabled={checking} onClick={() => void reconcile()}>
            {checking ? 'Comparing…' : 'Compare now'}
          </button>
        </div>
        {report && (
          <>
            <p data-field="clean" data-value={String(report.clean)}>
              {report.clean ? 'Every address matches.' : `${report.mismatches.length} difference(s).`}{' '}
              <span class="muted small">
                Checked <Time field="checked_at" value={report.checked_at} />
              </span>
            </p>
            <ul class="plain-list small">
              {report.chains.map((c) => (
                <li key={c.chain_id} data-chain-id={String(c.chain_id)}>
                  {c.chain}: {c.addresses} address(es) at block {c.block ?? '—'}
                  {c.skipped > 0 && `, ${c.skipped} skipped`}
                  {c.error && <span class="badge badge-bad">{c.error}</span>}
                </li>
              ))}
            </ul>
            {report.mismatches.length > 0 && (
              <Table
                name="reconcile"
                rows={report.mismatches}
                columns={MISMATCH_COLUMNS}
                caption="Differences between the chain and the records"
                rowKey={(m) => `${m.chain_id}:${m.deposit_address}:${m.token_address}`}
              />
            )}
          </>
        )}
      </Section>
      {canRescan && (
        <Section title="Rescan blocks" section="rescan">
          <p class="small muted">
            Re-reads the token transfers of a block range for every watched address and records and credits what was missed.
            Safe to repeat: nothing is recorded or credited twice. At most 200,000 blocks at a time.
          </p>
          {!gas.data ? (
            <Loading error={gas.error} what="the chains" />
          ) : (
            <form class="form-grid" onSubmit={(e) => void submit(e)}>
              <label class="form-field">
                <span>Chain</span>
                <select name="chain_id">
                  {chains.map((c) => (
                    <option key={c.chain_id} value={String(c.chain_id)}>
                      {c.chain} ({c.chain_id})
                    </option>
                  ))}
                </select>
              </label>
              <label class="form-field">
                <span>From block</span>
                <input type="text" name="from_block" inputMode="numeric" required pattern="^\d+$" autoComplete="off" />
              </label>
              <label class="form-field">
                <span>To block (empty: the head)</span>
                <input type="text" name="to_block" inputMode="numeric" pattern="^\d*$" autoComplete="off" />
              </label>
              <div>
                <button type="submit" class="btn btn-primary" data-action="rescan" disabled={busy}>
                  {busy ? 'Rescanning…' : 'Rescan'}
                </button>
              </div>
            </form>
          )}
          {rescan && (
            <p class="small" data-field="rescan_result" data-value={JSON.stringify(rescan)}>
              Read {rescan.logs} transfer log(s), {rescan.matched} to watched addresses, in {rescan.elapsed_ms} ms.
            </p>
          )}
        </Section>
      )}
    </>
  );
}
