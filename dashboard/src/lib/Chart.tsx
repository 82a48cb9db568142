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
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
        axes: [
          { stroke: '#4a5568', grid: { stroke: '#edf0f4' }, ticks: { stroke: '#cbd2dc' } },
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
  }, [props.times, props.values, props.label, props.unit]);
  return <div class="chart" ref={box} role="img" aria-label={props.summary} data-field="usage_chart" />;
}
