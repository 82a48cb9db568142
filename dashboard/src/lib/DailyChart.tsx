// The overview's chart: money in (bars) and usage billed (line) per UTC day; hovering a day (or
// focusing the chart and using ← →) shows that day's figures with the usage per offer. The exact
// numbers are in the table under it.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { DailyItem } from '../api/types';
import { formatUsd, toNumber } from './money';
import { dayStart, describeDay } from './daily';

const DAY = 86_400;

export function DailyChart(props: { items: DailyItem[]; summary: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [idx, setIdx] = useState<number | null>(null);
  const { items } = props;
  useEffect(() => {
    const el = box.current;
    if (!el || items.length === 0) return;
    const width = () => Math.max(260, el.clientWidth);
    const bars = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined;
    const plot = new uPlot(
      {
        width: width(),
        height: 220,
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { show: false } },
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
        axes: [
          {
            stroke: '#4a5568',
            grid: { stroke: '#edf0f4' },
            ticks: { stroke: '#cbd2dc' },
            space: 60,
            incrs: [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY],
            values: (_u, splits) => {
              const fmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
              return splits.map((t) => fmt.format(new Date(t * 1000)));
            },
          },
          {
            stroke: '#4a5568',
            grid: { stroke: '#edf0f4' },
            ticks: { stroke: '#cbd2dc' },
            size: 64,
            values: (_u, splits) => splits.map((v) => `$${v.toFixed(v < 10 ? 2 : 0)}`),
          },
        ],
        series: [
          {},
          { label: 'Money in', stroke: '#1d6b3a', fill: 'rgba(29,107,58,0.55)', width: 0, paths: bars, points: { show: false } },
          { label: 'Usage billed', stroke: '#2656c9', width: 2, points: { show: items.length <= 31 } },
        ],
        hooks: {
          setCursor: [(u) => setIdx(u.cursor.idx ?? null)],
        },
      },
      [items.map((d) => dayStart(d.day)), items.map((d) => toNumber(d.credited_usd)), items.map((d) => toNumber(d.billed_usd))],
      el,
    );
    const observer = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [items]);
  const shown = idx !== null && items[idx] ? items[idx] : items[items.length - 1];
  const onKey = (e: KeyboardEvent) => {
    const cur = idx ?? items.length - 1;
    if (e.key === 'ArrowLeft') setIdx(Math.max(0, cur - 1));
    else if (e.key === 'ArrowRight') setIdx(Math.min(items.length - 1, cur + 1));
  };
  const about = shown ? describeDay(shown) : null;
  return (
    <div class="daily" data-field="daily_chart" data-days={String(items.length)}>
      <div class="legend small" aria-hidden="true">
        <span class="swatch swatch-in" /> Money in <span class="swatch swatch-billed" /> Usage billed
      </div>
      <div class="chart" ref={box} role="img" aria-label={props.summary} tabIndex={0} onKeyDown={onKey} />
      {about && shown && (
        <div class="day-detail small" aria-live="polite" data-day={shown.day}>
          <strong>{about.label}</strong>
          <dl>
            {about.lines.map(([label, text, exact]) => (
              <div key={label}>
                <dt>{label}</dt>
                <dd title={`${formatUsd(exact)} exactly`}>{text}</dd>
              </div>
            ))}
          </dl>
        </div>
      )}
    </div>
  );
}
