"""OpenAI's Python SDK (openai) against the gateway's OpenAI-compatible API, configured only with
the base URL <server>/v1beta/openai/ and the gateway key, as a customer would. Run by
tests/api/gemini_clients.rs:

    python openai_client.py BASE_URL KEY OP[,OP...]

Prints one JSON object {op: result} (or {op: {"error": ...}}) on stdout.
"""

import json
import sys

import openai

base, key, ops = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
client = openai.OpenAI(api_key=key, base_url=base.rstrip("/") + "/v1beta/openai/", max_retries=0)
FLASH = "gemini-2.5-flash"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def chat():
    r = client.chat.completions.create(model=FLASH, messages=MESSAGES)
    return {"text": r.choices[0].message.content, "usage": r.usage.model_dump(mode="json")}


def stream_chunks(**extra):
    texts, usage, chunks = [], None, 0
    for c in client.chat.completions.create(model=FLASH, messages=MESSAGES, stream=True, **extra):
        chunks += 1
        for choice in c.choices:
            if choice.delta.content:
                texts.append(choice.delta.content)
        if c.usage is not None:
            usage = c.usage.model_dump(mode="json")
    return {"texts": texts, "usage": usage, "chunks": chunks}


def embed():
    r = client.embeddings.create(model="gemini-embedding-001", input=["Say hello", "and goodbye"])
    return {"vectors": [list(d.embedding) for d in r.data], "usage": r.usage.model_dump(mode="json")}


def models():
    return [m.id for m in client.models.list()]


def unknown_model():
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES).model_dump()


CALLS = {
    "chat": chat,
    "stream": stream_chunks,
    "stream_usage": lambda: stream_chunks(stream_options={"include_usage": True}),
    "embed": embed,
    "models": models,
    "unknown_model": unknown_model,
}

out = {}
for op in ops:
    try:
        out[op] = CALLS[op]()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {"raw": str(e.body)}
        out[op] = {"error": {"status": e.status_code, "body": body}}
print(json.dumps(out))
