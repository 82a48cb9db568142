// Copyable examples for the "How to use it" card.

const GEMINI_MODEL = 'gemini-2.5-flash';

/** The snippets for a Gemini gateway at BASE (the server's public base URL; `/v1beta` is under it). */
export function geminiSnippets(base: string): { curl: string; python: string; js: string } {
  const root = base.replace(/\/+$/, '');
  return {
    curl: `curl "${root}/v1beta/models/${GEMINI_MODEL}:generateContent" \\
  -H "x-goog-api-key: YOUR_KEY" \\
  -H "content-type: application/json" \\
  -d '{"contents":[{"parts":[{"text":"Hello"}]}]}'`,
    python: `from google import genai
from google.genai import types

client = genai.Client(
    api_key="YOUR_KEY",
    http_options=types.HttpOptions(base_url="${root}"),
)
print(client.models.generate_content(model="${GEMINI_MODEL}", contents="Hello").text)`,
    js: `import { GoogleGenAI } from "@google/genai";

const ai = new GoogleGenAI({ apiKey: "YOUR_KEY", httpOptions: { baseUrl: "${root}" } });
const res = await ai.models.generateContent({ model: "${GEMINI_MODEL}", contents: "Hello" });
console.log(res.text);`,
  };
}
