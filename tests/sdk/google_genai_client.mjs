// Google's JavaScript SDK (@google/genai) against the gateway, configured only with a base URL and
// the gateway key, as a customer would. Run by tests/api/gemini_clients.rs:
//
//   GOOGLE_GENAI_PREFIX=<npm prefix holding node_modules/@google/genai> \
//     node google_genai_client.mjs BASE_URL KEY OP[,OP...]
//
// Prints one JSON object {op: result} (or {op: {error: ...}}) on stdout.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.GOOGLE_GENAI_PREFIX, 'package.json'));
const { GoogleGenAI } = require('@google/genai');

const [base, apiKey, ops] = process.argv.slice(2);
const ai = new GoogleGenAI({ apiKey, httpOptions: { baseUrl: base } });
const FLASH = 'gemini-2.5-flash';

const calls = {
  generate: async () => {
    const r = await ai.models.generateContent({ model: FLASH, contents: 'Say hello' });
    return { text: r.text, usage: r.usageMetadata, response_id: r.responseId };
  },
  stream: async () => {
    const texts = [];
    let usage;
    for await (const c of await ai.models.generateContentStream({ model: FLASH, contents: 'Say hello' })) {
      texts.push(c.text);
      usage = c.usageMetadata;
    }
    return { texts, usage };
  },
  count_tokens: async () => (await ai.models.countTokens({ model: FLASH, contents: 'Say hello' })).totalTokens,
  embed: async () =>
    (await ai.models.embedContent({ model: 'gemini-embedding-001', contents: 'Say hello' })).embeddings.map(
      (e) => e.values,
    ),
};

const out = {};
for (const op of ops.split(',')) {
  try {
    out[op] = await calls[op]();
  } catch (e) {
    out[op] = { error: { code: e.status ?? null, message: String(e.message ?? e) } };
  }
}
console.log(JSON.stringify(out));
