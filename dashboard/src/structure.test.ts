// The layout rules of dashboard/src (issue #25): no source file over 400 lines (the generated
// OpenAPI types aside), and no generic field dumper (a component printing an object's keys as labels).
import { describe, expect, test } from 'vitest';

// Every file under src/, as text (Vite's glob; the test runs under vitest).
const all = import.meta.glob<string>(['./**/*', '!./api/openapi.d.ts'], { query: '?raw', import: 'default', eager: true });
const sources = Object.entries(all).map(([path, text]) => ({ path: path.replace(/^\.\//, ''), text }));
const MAX_LINES = 400;

describe('dashboard/src layout', () => {
  test('the check sees the whole tree (views, components and api of both pages, styles)', () => {
    for (const dir of ['vendor/views/', 'customer/views/', 'components/', 'api/', 'styles/']) {
      expect(sources.some((f) => f.path.startsWith(dir)), dir).toBe(true);
    }
    expect(sources.some((f) => f.path === 'api/openapi.d.ts')).toBe(false);
  });

  test(`no file over ${MAX_LINES} lines`, () => {
    const long = sources
      .map((f) => ({ path: f.path, lines: f.text.replace(/\n$/, '').split('\n').length }))
      .filter((f) => f.lines > MAX_LINES)
      .map((f) => `${f.path}: ${f.lines} lines`);
    expect(long).toEqual([]);
  });

  test('no component prints object keys as labels', () => {
    const dumpers = sources
      .filter((f) => f.path.endsWith('.tsx'))
      .filter(
        (f) =>
          /Object\.(keys|entries)\([\s\S]{0,300}?<(dt|th|div class="stat-label")[^>]*>\s*\{\s*(humanize\(|k\b|key\b)/.test(f.text) ||
          /\bhumanize\(/.test(f.text),
      )
      .map((f) => f.path);
    expect(dumpers).toEqual([]);
  });
});
