import { describe, expect, test } from 'vitest';
import readme from '../../../README.md?raw';
import { geminiSnippets } from './snippets';

describe('geminiSnippets', () => {
  test('curl hits /v1beta/models under the base URL; the SDKs get the base URL itself', () => {
    for (const base of ['https://vendor.example', 'https://vendor.example/']) {
      const s = geminiSnippets(base);
      expect(s.curl).toContain('"https://vendor.example/v1beta/models/gemini-2.5-flash:generateContent"');
      expect(s.curl).toContain('x-goog-api-key: YOUR_KEY');
      expect(s.python).toContain('base_url="https://vendor.example"');
      expect(s.python).toContain('api_key="YOUR_KEY"');
      expect(s.js).toContain('baseUrl: "https://vendor.example"');
      expect(s.js).toContain('apiKey: "YOUR_KEY"');
      expect(s.openai).toContain('base_url="https://vendor.example/v1beta/openai/"');
      expect(s.openai).toContain('api_key="YOUR_KEY"');
    }
  });

  test('a shown key replaces the placeholder everywhere', () => {
    const s = geminiSnippets('https://vendor.example', 'vsg_abc123');
    for (const snippet of [s.curl, s.python, s.js, s.openai]) {
      expect(snippet).toContain('vsg_abc123');
      expect(snippet).not.toContain('YOUR_KEY');
    }
  });

  test("the README's \"Use it from your code\" shows the same snippets", () => {
    const section = readme.split('## Use it from your code')[1]?.split('\n## ')[0] ?? '';
    expect(section).not.toBe('');
    const s = geminiSnippets('https://vendor.example');
    for (const snippet of [s.python, s.js, s.openai, s.curl]) {
      expect(section).toContain(snippet);
    }
  });
});
