"""A fake 1min.ai: a real HTTP/1.1 server on loopback that follows the upstream contract strictly.

It rejects what the real service rejects and reproduces its quirks. Where the real service
accepts a mistake and ignores it silently, the fake responds with 400
REQUEST_BODY_VALIDATION_FAILED and a message naming the mistake, so a relay bug fails a test
instead of hiding.

Usage::

    from tests.fake_onemin import FakeOneMin

    fake = FakeOneMin(host="127.0.0.1", port=0).start()  # serves in a daemon thread
    fake.base_url        # "http://127.0.0.1:PORT", the relay's ONE_MIN_API_URL
    fake.asset_url       # base_url + "/cdn", the relay's ONE_MIN_ASSET_URL
    fake.keys            # set of accepted API-KEY values, default {"test-key-1", "test-key-2"}
    fake.set(chunk_delay=0.05, drop_after_chunks=3)   # unknown field -> TypeError
    fake.script("first answer", "second answer")      # next chat answers, in order
    fake.default_answer(model, prompt)                # the answer when no script is queued
    fake.received        # list of RecordedRequest(method, path, query, headers, json, form, files)
    fake.requests_to("/api/chat-with-ai")
    fake.stream_disconnects  # streams the client closed before the fake finished writing
    fake.catalog_requests    # number of GET /models calls
    fake.assets, fake.conversations   # stored uploads and results (by path), conversations
    fake.reset()         # default behaviour and keys, no requests, assets, replies or counts
    fake.stop()

`FakeOneMin` is also a context manager. `python -m tests.fake_onemin --port N` serves it alone
and prints the base URL on one line (options: --host, --chunk-delay, --chunk-size,
--reply-chars, --key).

Endpoints: POST /api/chat-with-ai (with ?isStreaming=true for named SSE events content, result,
done and error), POST /api/features, POST /api/assets, POST /api/conversations,
DELETE /api/conversations/<uuid>, GET /api/results/<uuid>, GET /models?feature=X (no key),
GET /cdn/<storage key> (no key).

Behaviour fields for `set()`, with defaults (`Behaviour` in behaviour.py lists them all):

* chunk_size=4 characters per content event; chunk_delay=0.0 seconds between them;
  empty_first_delta=True; split_utf8=False writes the stream one byte per write;
  duplicate_full_text=False repeats the whole text in the same write as `result`.
* error_event=None (a message sends HTTP 200 and `event: error` after error_after_chunks=0
  text chunks) in error_event_shape "string", "object" or "message";
  drop_after_chunks=None closes the connection mid-body; stall_after_chunks=None with
  stall_mid_stream_seconds=0 pauses mid-stream. Chunk counts skip the empty first delta.
* zero_tokens=False; result_location "detail" or "top"; finish_reason="stop" (None omits it);
  record_status "SUCCESS" or "FAILED" (non-streaming records only); reply_chars=None;
  tts_raw_bytes=False returns bare audio bytes for TEXT_TO_SPEECH; tts_temporary_url="valid"
  ("missing" leaves `temporaryUrl` out of speech records, "expired" makes the CDN answer it with
  403); stt_json_text=False wraps transcripts as a JSON string with a "text" key.
* fail_status=None (400, 401, 403, 429, 500, 502 or 522) fails every API call, for fail_count
  calls (None: until reset), the catalog too with fail_catalog=True. A 429 carries
  Retry-After from retry_after="7", and 400 and 500 bodies use error_code="UNKNOWN_ERROR",
  error_message and error_details=None. stall_seconds=0 delays the response (the catalog
  only with fail_catalog). rate_limit_per_minute=None sends 429 per key over the limit;
  block_plain_clients=False sends 403 HTML to a missing or library User-Agent.

Quirks reproduced by default: a streamed call with an unknown model gets HTTP 200 and an error
event, the first delta is empty, `teamUser.usedCredit` lags one request behind, the catalog lists
DISABLED models and `o1-pro` (which chat rejects), provider errors carry a canned message with
the cause as a JSON-encoded `details` string, and `qwen3-tts-flash` returns WAV whatever format
was requested. Streams use chunked transfer encoding, so `drop_after_chunks` ends the body
without its last chunk. Transcripts are `audio.transcript_text(filename)`.

Checks stricter than the real service, each reported in the 400 message: body and promptObject
fields the service does not read (such as `imageList` or `temperature`), an image path or
document uuid in the wrong attachment list, an asset uploaded with another API key, and an
upload whose part Content-Type does not match its file extension.
"""

from .behaviour import Behaviour
from .chat import default_answer
from .server import FakeOneMin
from .state import Asset, Conversation, RecordedRequest

__all__ = ["Asset", "Behaviour", "Conversation", "FakeOneMin", "RecordedRequest",
           "default_answer"]
