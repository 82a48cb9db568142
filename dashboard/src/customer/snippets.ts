// Copyable examples for the "How to use it" card. The README's "Use it from your code" section shows
// the same three SDK snippets (snippets.test.ts checks they match).

const GEMINI_MODEL = 'gemini-2.5-flash';

/**
 * The snippets for a Gemini gateway at BASE (the server's public base URL; Google's REST API is
 * under `/v1beta` and `/v1`, Gemini's OpenAI-compatible API under `/v1beta/openai/`), with KEY
 * (the customer's gateway key while they show it on the page; a placeholder otherwise).
 */
export function geminiSnippets(base: string, key = 'YOUR_KEY'): { curl: string; python: string; js: string; openai: string } {
  const root = base.replace(/\/+$/, '');
  return {
    curl: `curl "${root}/v1beta/models/${GEMINI_MODEL}:generateContent" \\
  -H "x-goog-api-key: ${key}" \\
  -H "content-type: application/json" \\
  -d '{"contents":[{"parts":[{"text":"Hello"}]}]}'`,
    python: `from google import genai
from google.genai import types

client = genai.Client(
    api_key="${key}",
    http_options=types.HttpOptions(base_url="${root}"),
)
print(client.models.generate_content(model="${GEMINI_MODEL}", contents="Hello").text)`,
    js: `import { GoogleGenAI } from "@google/genai";

const ai = new GoogleGenAI({ apiKey: "${key}", httpOptions: { baseUrl: "${root}" } });
const res = await ai.models.generateContent({ model: "${GEMINI_MODEL}", contents: "Hello" });
console.log(res.text);`,
    openai: `from openai import OpenAI

client = OpenAI(api_key="${key}", base_url="${root}/v1beta/openai/")
res = client.chat.completions.create(
    model="${GEMINI_MODEL}",
    messages=[{"role": "user", "content": "Hello"}],
)
print(res.choices[0].message.content)`,
  };
}
