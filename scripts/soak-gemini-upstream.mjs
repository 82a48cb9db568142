// A local stand-in for Google's Gemini API used by scripts/soak.sh, scripts/bench-gateway.sh and
// scripts/browser-test.sh: answers generateContent in Google's wire format with a usageMetadata
// block, so the gateway meters real-looking usage.
//   node scripts/soak-gemini-upstream.mjs PORT
import { createServer } from "node:http";

const port = Number(process.argv[2]);
createServer((req, res) => {
  let size = 0;
  req.on("data", (chunk) => (size += chunk.length));
  req.on("end", () => {
    const model = /models\/([^:]+):/.exec(req.url)?.[1] ?? "gemini-2.5-flash";
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({
      candidates: [{ content: { role: "model", parts: [{ text: "Hello from the soak stand-in." }] }, finishReason: "STOP", index: 0 }],
      usageMetadata: { promptTokenCount: 4 + (size % 7), candidatesTokenCount: 8, totalTokenCount: 12 + (size % 7) },
      modelVersion: model,
      responseId: `soak-${Date.now()}`,
    }));
  });
}).listen(port, "127.0.0.1");
