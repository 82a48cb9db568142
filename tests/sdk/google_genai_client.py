"""Google's Python SDK (google-genai) against the gateway, configured only with a base URL and the
gateway key, as a customer would. Run by tests/api/gemini_clients.rs:

    python google_genai_client.py BASE_URL KEY OP[,OP...]

Each OP is one call; prints one JSON object {op: result} (or {op: {"error": ...}}) on stdout.
"""

import asyncio
import json
import sys

from google import genai
from google.genai import errors, types

base, key, ops = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base))
FLASH = "gemini-2.5-flash"
EMBED = "gemini-embedding-001"


def usage(u):
    return None if u is None else u.model_dump(exclude_none=True, mode="json")


def generate():
    r = client.models.generate_content(model=FLASH, contents="Say hello")
    return {"text": r.text, "usage": usage(r.usage_metadata), "response_id": r.response_id}


def stream():
    chunks = list(client.models.generate_content_stream(model=FLASH, contents="Say hello"))
    return {"texts": [c.text for c in chunks], "usage": usage(chunks[-1].usage_metadata)}


async def async_generate():
    r = await client.aio.models.generate_content(model=FLASH, contents="Say hello")
    return {"text": r.text, "usage": usage(r.usage_metadata)}


async def async_stream():
    texts = []
    async for c in await client.aio.models.generate_content_stream(model=FLASH, contents="Say hello"):
        texts.append(c.text)
    return {"texts": texts}


def count_tokens():
    return client.models.count_tokens(model=FLASH, contents="Say hello").total_tokens


def list_models():
    return [m.name for m in client.models.list()]


def get_model():
    return client.models.get(model=FLASH).name


def embed():
    r = client.models.embed_content(model=EMBED, contents="Say hello")
    return [e.values for e in r.embeddings]


def embed_many():
    r = client.models.embed_content(model=EMBED, contents=["Say hello", "and goodbye"])
    return [e.values for e in r.embeddings]


def unsold():
    return [f.name for f in client.files.list()]


CALLS = {
    "generate": generate,
    "stream": stream,
    "async_generate": lambda: asyncio.run(async_generate()),
    "async_stream": lambda: asyncio.run(async_stream()),
    "count_tokens": count_tokens,
    "list_models": list_models,
    "get_model": get_model,
    "embed": embed,
    "embed_many": embed_many,
    "unsold": unsold,
}

out = {}
for op in ops:
    try:
        out[op] = CALLS[op]()
    except errors.APIError as e:
        out[op] = {"error": {"code": e.code, "status": e.status, "message": e.message}}
print(json.dumps(out))
