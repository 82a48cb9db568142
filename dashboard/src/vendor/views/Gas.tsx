// Gas: the wallet that pays sweeps, per chain.
import { Loading, Section } from '../../components/Section';
import { GasTable } from '../components/GasTable';
import { useAdmin, useLoad } from '../hooks';

export function Gas() {
  const admin = useAdmin();
  const { data, error } = useLoad('gas', admin.gas);
  const rows = data ? (Array.isArray(data) ? data : data.items) : null;
  return (
    <>
      <h1>Gas</h1>
      <Section title="Gas wallet balance per chain">
        <p class="muted small">
          The gas wallet pays sweeps. When it runs low, sweeps wait (nothing fails); top it up with the chain’s native
          coin.
        </p>
        {rows ? <GasTable rows={rows} /> : <Loading error={error} what="gas balances" />}
      </Section>
    </>
  );
}
