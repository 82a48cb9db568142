import { describe, expect, test } from 'vitest';
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
    }
  });
});
