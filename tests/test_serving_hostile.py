"""The model server under hostile input: every request ends with a result or a 4xx, and generation goes on.

Found by fuzzing the server's OpenAPI schema and by running lm-evaluation-harness against it; each test here
failed before the fix it names.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from engine.tokenizer import JINJA_TEMPLATE, render_chat
from tests.serving_fixtures import LiveServer, live_server

WAIT = 20.0
EXTREMES = [
    {"top_p": 5e-324},
    {"temperature": 1e-45},
    {"temperature": 5e-324, "top_p": 1e-300},
    {"repetition_penalty": 1e-300},
    {"repetition_penalty": 5e-324, "temperature": 2.0},
]


@pytest.fixture(scope="module")
def server(served_run_dir: Path):
    with live_server(served_run_dir) as live:
        yield live


def http(server: LiveServer) -> httpx.Client:
    return server.client()


def assert_alive(server: LiveServer) -> None:
    """Health says ok and a fresh generation comes back."""
    with http(server) as client:
        assert client.get("/health").status_code == 200
        reply = client.post("/v1/completions", json={"prompt": "def ", "max_tokens": 3, "temperature": 0})
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] >= 1
    assert server.served.batcher.alive


def sse_lines(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


# -- values at and past the edges -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**53 + 1, 2**64, 2**70, -(2**63) - 1])
def test_a_seed_json_cannot_carry_exactly_is_a_422_and_the_batcher_lives_on(server, seed):
    with http(server) as client:
        response = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2, "seed": seed})
    assert response.status_code == 422 and response.json()["error"]["param"] == "seed"
    assert_alive(server)


def test_the_largest_seed_works_for_every_choice(server):
    body = {"prompt": "x", "max_tokens": 3, "seed": 2**53, "n": 3, "temperature": 1.0}
    with http(server) as client:
        first = client.post("/v1/completions", json=body)
        again = client.post("/v1/completions", json=body)
    assert first.status_code == 200 and len(first.json()["choices"]) == 3
    assert [c["text"] for c in first.json()["choices"]] == [c["text"] for c in again.json()["choices"]]


@pytest.mark.parametrize("extreme", EXTREMES, ids=[json.dumps(e) for e in EXTREMES])
def test_degenerate_sampling_values_give_a_result_streamed_or_not(server, extreme):
    body = {"prompt": "def f(x):", "max_tokens": 6, **extreme}
    with http(server) as client:
        plain = client.post("/v1/completions", json=body)
        assert plain.status_code == 200, plain.text
        assert plain.json()["choices"][0]["finish_reason"] in ("stop", "length")
        with client.stream(
            "POST", "/v1/completions", json={**body, "stream": True}, timeout=WAIT
        ) as response:
            lines = sse_lines(response)
    assert lines[-1] == "[DONE]"
    assert all("error" not in json.loads(line) for line in lines[:-1])


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "a\ud800b"},
        {"prompt": ["ok", "\udfff"]},
        {"prompt": "x", "stop": ["\ud800"]},
        {"prompt": "x", "temperature": float("nan")},
        {"prompt": "x", "top_p": float("inf")},
        {"prompt": "x", "max_tokens": 2, "n": 17},
        {"prompt": [[1, 2]] * 257},
    ],
    ids=["lone-surrogate", "surrogate-in-list", "surrogate-stop", "nan", "inf", "n", "too-many-prompts"],
)
def test_malformed_values_are_422s_in_openai_shape(server, body):
    # json.dumps writes NaN/Infinity and escaped lone surrogates: what a hostile client can send.
    raw = json.dumps(body).encode()
    with http(server) as client:
        response = client.post("/v1/completions", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert set(response.json()["error"]) >= {"message", "type", "param", "code"}
    assert_alive(server)


def test_a_lone_surrogate_in_a_chat_message_is_a_422(server):
    body = {"messages": [{"role": "user", "content": "hi \ud800"}], "max_tokens": 2}
    with http(server) as client:
        response = client.post(
            "/v1/chat/completions",
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 422


def test_an_omitted_max_tokens_with_a_full_context_says_the_prompt_is_too_long(server):
    with http(server) as client:
        response = client.post("/v1/completions", json={"prompt": "word " * 200})
    message = response.json()["error"]["message"]
    assert response.status_code == 400 and "maximum context length is 64" in message
    assert "your prompt has" in message and "-" not in message.split("has")[1].split("tokens")[0]


def test_more_sequences_than_the_server_takes_at_once_is_a_400_not_a_queue_full(server):
    with http(server) as client:
        response = client.post(
            "/v1/completions", json={"prompt": ["a", "b", "c", "d", "e"], "n": 16, "max_tokens": 1}
        )
    assert response.status_code == 400
    assert (
        "80 sequences" in response.json()["error"]["message"]
        and "at most 72" in response.json()["error"]["message"]
    )


def test_a_wrong_method_is_a_405_with_allow(server):
    with http(server) as client:
        response = client.get("/v1/completions")
    assert response.status_code == 405 and response.headers["allow"] == "POST"


def test_after_an_error_the_connection_stays_usable_and_an_unread_body_closes_it(served_run_dir):
    with live_server(served_run_dir, max_body=1000) as live, live.client() as client:
        assert client.post("/v1/completions", json={"prompt": "x", "temperature": -1}).status_code == 422
        assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}).status_code == 200
        big = client.post("/v1/completions", json={"prompt": "x" * 5000})
        assert big.status_code == 413 and big.headers["connection"] == "close"
        assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}).status_code == 200


# -- failures stay with their request --------------------------------------------------------------------------


def test_an_exception_in_one_request_fails_that_request_only(server, monkeypatch):
    import engine.server.batcher as batcher_module

    real = batcher_module.next_tokens

    def flaky(logits, params, seen, generator):
        if params.seed == 666:
            raise RuntimeError("boom")
        return real(logits, params, seen, generator)

    monkeypatch.setattr(batcher_module, "next_tokens", flaky)
    results: dict[str, httpx.Response] = {}

    def send(name: str, seed: int) -> None:
        with http(server) as client:
            body = {"prompt": "def ", "max_tokens": 8, "temperature": 1.0, "seed": seed}
            results[name] = client.post("/v1/completions", json=body)

    threads = [threading.Thread(target=send, args=args) for args in (("bad", 666), ("good", 7))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert results["good"].status_code == 200
    assert results["bad"].status_code == 500 and "RuntimeError" in results["bad"].json()["error"]["message"]
    monkeypatch.undo()
    assert_alive(server)


def test_a_request_whose_second_prompt_does_not_fit_queues_nothing(server):
    with http(server) as client:
        response = client.post("/v1/completions", json={"prompt": ["def ", "word " * 60], "max_tokens": 10})
    assert response.status_code == 400
    stats = server.served.batcher.stats()
    assert stats["queue_depth"] == 0 and stats["active"] == 0


def test_a_failing_sibling_cancels_the_rest_of_a_multi_choice_request(server, monkeypatch):
    import engine.server.batcher as batcher_module

    real = batcher_module.next_tokens
    calls = {"n": 0}

    def fail_on_the_fifth_token(logits, params, seen, generator):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("boom")
        return real(logits, params, seen, generator)

    monkeypatch.setattr(batcher_module, "next_tokens", fail_on_the_fifth_token)
    body = {"prompt": "x", "n": 3, "max_tokens": 40, "ignore_eos": True, "temperature": 1.0, "seed": 1}
    with http(server) as client:
        response = client.post("/v1/completions", json=body)
    assert response.status_code == 500
    monkeypatch.undo()
    deadline = time.monotonic() + WAIT
    while server.served.batcher.stats()["active"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.served.batcher.stats()["active"] == 0, "the two healthy choices were cancelled"


def test_a_client_that_leaves_a_plain_request_cancels_its_generation(server, monkeypatch):
    batcher = server.served.batcher
    decode = batcher.cache.decode

    def slow_decode(*args, **kwargs):  # 60 tokens take over a second: long enough to leave in the middle
        time.sleep(0.02)
        return decode(*args, **kwargs)

    monkeypatch.setattr(batcher.cache, "decode", slow_decode)
    before = batcher.stats()["tokens_generated"]
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"prompt": "x", "max_tokens": 60, "ignore_eos": True, "temperature": 1.0}).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + WAIT
        while batcher.stats()["active"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
    deadline = time.monotonic() + WAIT
    while batcher.stats()["active"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert batcher.stats()["active"] == 0
    assert batcher.stats()["tokens_generated"] - before < 60, "the generation stopped early"


def test_if_the_batching_loop_dies_health_turns_503_and_requests_fail_at_once(served_run_dir):
    with live_server(served_run_dir) as live, live.client() as client:
        batcher = live.served.batcher

        def die() -> bool:
            raise SystemError("simulated crash of the loop")

        batcher._turn = die  # type: ignore[method-assign]  # the next turn of the loop raises
        client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2})  # wakes the loop up
        deadline = time.monotonic() + WAIT
        while batcher.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        health = client.get("/health")
        assert health.status_code == 503 and "batching loop stopped" in health.json()["error"]
        started = time.monotonic()
        refused = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2})
        assert refused.status_code == 503 and time.monotonic() - started < 1.0


# -- the model's one owner ------------------------------------------------------------------------------------


def test_scoring_embeddings_and_attention_run_on_the_batcher_thread(server, monkeypatch):
    import engine.generation.scoring as scoring
    import engine.model.attention_maps as attention_maps

    threads: list[str] = []
    real_score, real_attention = scoring.score_tokens, attention_maps.attention_on_text
    model = server.served.loaded.model
    real_forward = model.forward

    def score(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_score(*args, **kwargs)

    def attention(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_attention(*args, **kwargs)

    def forward(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_tokens", score)
    monkeypatch.setattr(attention_maps, "attention_on_text", attention)
    monkeypatch.setattr(model, "forward", forward)
    with http(server) as client:
        echo = {"prompt": "def f", "max_tokens": 0, "echo": True, "logprobs": 1}
        assert client.post("/v1/completions", json=echo).status_code == 200
        assert client.post("/embed", json={"text": ["a", "b"]}).status_code == 200
        assert client.post("/attention", json={"text": "def f"}).status_code == 200
    assert threads and set(threads) == {"llmodel-batcher"}


def test_embed_takes_a_bounded_number_of_inputs(server):
    with http(server) as client:
        assert client.post("/embed", json={"text": ["x"] * 65}).status_code == 422
        assert client.post("/embed", json={"text": ["x"] * 64}).status_code == 200


def test_without_an_api_key_the_rate_limit_keys_on_the_client_address(served_run_dir):
    with live_server(served_run_dir, rate_limit=1.0) as live, live.client() as client:
        codes = [
            client.get("/v1/models", headers={"Authorization": f"Bearer made-up-{i}"}).status_code
            for i in range(5)
        ]
    assert 429 in codes, "a fresh made-up key per request does not escape the limit"


# -- lm-evaluation-harness's remote tokenizer --------------------------------------------------------------------


def test_special_tokens_in_text_map_to_their_ids_like_lm_eval_expects(server):
    with http(server) as client:
        bos = client.post("/tokenize", json={"prompt": "<s>", "add_special_tokens": False}).json()["tokens"]
        eos = client.post("/tokenize", json={"prompt": "</s>", "add_special_tokens": False}).json()["tokens"]
        mixed = client.post("/tokenize", json={"prompt": "<s>def</s>", "add_special_tokens": False}).json()[
            "tokens"
        ]
        info = client.get("/tokenizer_info").json()
    assert bos == [info["bos_token_id"]] == [2] and eos == [info["eos_token_id"]] == [3]
    assert mixed[0] == 2 and mixed[-1] == 3 and len(mixed) > 2
    assert info["bos_token"] == "<s>" and info["pad_token_id"] == 0


def test_the_published_chat_template_is_jinja_that_renders_our_template(server):
    jinja2 = pytest.importorskip("jinja2")
    with http(server) as client:
        template = client.get("/tokenizer_info").json()["chat_template"]
    assert template == JINJA_TEMPLATE
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?\nSay it."},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]
    compiled = jinja2.Environment().from_string(template)
    for prompt in (True, False):
        assert compiled.render(messages=messages, add_generation_prompt=prompt) == render_chat(
            messages, prompt
        )
