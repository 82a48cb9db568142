// The usage chart: uPlot bars, one per bucket, sized to its container (phone to desktop). The canvas
// is described for screen readers; the table beside it holds the exact numbers.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartProps {
  /** Bucket start times, epoch seconds. */
  times: number[];
  /** One value per bucket (geometry only; totals are computed exactly elsewhere). */
  values: number[];
  label: string;
  summary: string;
  unit?: string;
  /** The bucket size: ticks on whole days (or months) except for hourly buckets. */
  interval?: 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';
  /** The selected range (epoch seconds), so empty days show as empty. */
  from?: number;
  to?: number;
}

const DAY = 86_400;

function tickFormat(interval: ChartProps['interval']): Intl.DateTimeFormatOptions {
  switch (interval) {
    case 'hourly':
      return { month: 'short', day: 'numeric', hour: '2-digit', timeZone: 'UTC' };
    case 'monthly':
    case 'yearly':
      return { year: 'numeric', month: 'short', timeZone: 'UTC' };
    default:
      return { month: 'short', day: 'numeric', timeZone: 'UTC' };
  }
}

export function BarChart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = () => Math.max(260, el.clientWidth);
    const bars = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 48] }) : undefined;
    const plot = new uPlot(
      {
        width: width(),
        height: 220,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
        scales: {
          x: {
            time: true,
            range: (_u, min, max) => [Math.min(min, props.from ?? min), Math.max(max, props.to ?? max)],
          },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
        },
        axes: [
          {
            stroke: '#4a5568',
            grid: { stroke: '#edf0f4' },
            ticks: { stroke: '#cbd2dc' },
            space: 70,
            // Buckets are UTC days/weeks/months: ticks on whole days, labelled in UTC.
            incrs:
              props.interval === 'hourly'
                ? [3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY, 2 * DAY, 7 * DAY]
                : [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 182 * DAY, 365 * DAY],
            values: (_u, splits) => {
              const fmt = new Intl.DateTimeFormat(undefined, tickFormat(props.interval));
              return splits.map((t) => fmt.format(new Date(t * 1000)));
            },
          },
          {
            stroke: '#4a5568',
            grid: { stroke: '#edf0f4' },
            ticks: { stroke: '#cbd2dc' },
            size: 64,
            values: (_u, splits) => splits.map((v) => `${props.unit ?? '$'}${v.toFixed(v < 1 ? 3 : 2)}`),
          },
        ],
        series: [
          {},
          { label: props.label, stroke: '#2656c9', fill: 'rgba(38,86,201,0.75)', width: 0, paths: bars, points: { show: false } },
        ],
      },
      [props.times, props.values],
      el,
    );
    const observer = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [props.times, props.values, props.label, props.unit, props.interval, props.from, props.to]);
  return <div class="chart" ref={box} role="img" aria-label={props.summary} data-field="usage_chart" />;
}
