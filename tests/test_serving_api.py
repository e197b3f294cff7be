"""The model server as other tools see it: the seed's endpoints, OpenAI's API through the official client,
vLLM's tokenizer endpoints, Prometheus metrics, errors and guards."""

from __future__ import annotations

import concurrent.futures
import math
from pathlib import Path

import openai
import pytest
import torch

from engine.errors import LLModelError
from engine.runs.loading import load_for_inference
from engine.server.run import resolve_api_key
from tests.serving_fixtures import live_server

API_KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def model_dir(served_run_dir) -> Path:
    return served_run_dir


@pytest.fixture(scope="module")
def server(model_dir):
    with live_server(model_dir) as live:
        yield live


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


# -- the seed's endpoints -------------------------------------------------------------------------------


def test_health_and_model_info(server):
    with server.client() as http:
        assert http.get("/health").json()["status"] == "ok"
        info = http.get("/model-info").json()
    assert info["config"]["d_model"] == 32 and info["parameters"] > 0
    assert info["tokenizer"]["vocab_size"] == 512 and info["checkpoint"]["step"] == 30


def test_health_is_503_while_the_model_loads(model_dir):
    with live_server(model_dir, load=False) as live, live.client() as http:
        assert http.get("/health").status_code == 503
        response = http.post("/v1/completions", json={"prompt": "x"})
        assert response.status_code == 503 and response.json()["error"]["code"] == "model_loading"


def test_generate_returns_text_and_streams_the_same_text(server):
    body = {"prompt": "def ", "max_tokens": 12, "temperature": 0}
    with server.client() as http:
        whole = http.post("/generate", json=body).json()
        assert len(whole["tokens"]) <= 12 and whole["usage"]["completion_tokens"] == len(whole["tokens"])
        with http.stream("POST", "/generate", json={**body, "stream": True}) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    import json

    chunks = [json.loads(line[6:]) for line in lines]
    assert "".join(c.get("text", "") for c in chunks) == whole["text"]
    assert chunks[-1]["done"] is True


def test_embed_gives_token_vectors_and_a_pooled_vector(server):
    with server.client() as http:
        body = http.post("/embed", json={"text": ["hello world", "x"]}).json()
    assert body["dimension"] == 32 and len(body["embeddings"]) == 2
    assert len(body["embeddings"][0]) == 32
    tokens = body["token_embeddings"][0]
    mean = [sum(column) / len(tokens) for column in zip(*tokens, strict=True)]
    assert mean == pytest.approx(body["embeddings"][0], abs=1e-5)


def test_attention_gives_every_layer_and_heads_map_of_a_typed_text(server):
    with server.client() as http:
        body = http.post("/attention", json={"text": "def add(a, b):"}).json()
        empty = http.post("/attention", json={"text": ""})
    config = server.served.loaded.model.config
    tokens, weights = body["tokens"], body["weights"]
    assert "".join(tokens).startswith("def") and len(weights) == config.n_layers
    assert all(len(layer) == config.n_heads for layer in weights)
    for row_index, row in enumerate(weights[0][0]):  # causal rows, each a distribution over the keys
        assert len(row) == len(tokens) and sum(row) == pytest.approx(1.0, abs=1e-3)
        assert all(value == 0 for value in row[row_index + 1 :])
    assert empty.status_code == 422 and empty.json()["error"]["message"].startswith("text: ")


# -- OpenAI, through the official client ----------------------------------------------------------------


def test_models_lists_the_served_model(client, server):
    assert [m.id for m in client.models.list().data] == [server.served.name]


def test_completions_accept_every_prompt_form(client, server):
    tokenizer = server.served.loaded.tokenizer
    ids = tokenizer.encode("def add", add_bos=True)
    class_ids = tokenizer.encode("class A", add_bos=True)
    cases = (
        ("def add", [ids]),
        (["def add", "class A"], [ids, class_ids]),
        (ids, [ids]),
        ([ids, ids], [ids, ids]),
    )
    for prompt, expected in cases:
        result = client.completions.create(model="m", prompt=prompt, max_tokens=5, temperature=0)
        assert len(result.choices) == len(expected)
        assert result.usage.prompt_tokens == sum(len(e) for e in expected)
        assert all(c.finish_reason in ("stop", "length") for c in result.choices)
    same = client.completions.create(model="m", prompt=[ids, ids], max_tokens=5, temperature=0)
    assert same.choices[0].text == same.choices[1].text, "greedy is deterministic"


def test_n_samples_and_default_max_tokens_fill_the_context(client, server):
    result = client.completions.create(model="m", prompt="x", n=3, temperature=1.0, seed=1, max_tokens=4)
    assert [c.index for c in result.choices] == [0, 1, 2]
    # Without max_tokens a completion may run to the end of the context: exactly there when EOS is ignored.
    long = client.completions.create(
        model="m", prompt="x", temperature=1.0, seed=2, extra_body={"ignore_eos": True}
    )
    room = server.served.loaded.model.config.max_len - long.usage.prompt_tokens
    assert long.usage.completion_tokens == room and long.choices[0].finish_reason == "length"
    free = client.completions.create(model="m", prompt="x", temperature=1.0, seed=2)
    assert 0 < free.usage.completion_tokens <= room


def test_echo_with_logprobs_scores_the_prompt_like_lm_eval_expects(client, server):
    prompt = "def main():\n    return 1\n"
    result = client.completions.create(model="m", prompt=prompt, max_tokens=0, echo=True, logprobs=1)
    logprobs = result.choices[0].logprobs
    tokenizer = server.served.loaded.tokenizer
    ids = tokenizer.encode(prompt, add_bos=True)
    assert len(logprobs.tokens) == len(ids) == len(logprobs.token_logprobs)
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    # An independent computation: a fresh copy of the checkpoint, its full forward pass, log-softmax.
    fresh = load_for_inference(server.served.options.model_path, device="cpu").model
    with torch.inference_mode():
        expected = fresh(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    assert logprobs.token_logprobs[1:] == pytest.approx(
        [expected[i - 1, ids[i]].item() for i in range(1, len(ids))], abs=1e-4
    )
    best = [tokenizer.decode([int(expected[i - 1].argmax())]) for i in range(1, len(ids))]
    assert [list(top) for top in logprobs.top_logprobs[1:]] == [[b] for b in best]
    assert result.choices[0].text.endswith(prompt)


def test_chat_completion_uses_the_chat_template(client, server):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    reply = client.chat.completions.create(model="m", messages=messages, max_tokens=8, temperature=0)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    # The prompt the model saw is the documented template, opening an assistant turn.
    rendered = "<|system|>\nBe brief.\n<|user|>\nhi\n<|assistant|>\n"
    expected = server.served.loaded.tokenizer.encode(rendered, add_bos=True)
    assert reply.usage.prompt_tokens == len(expected)
    with server.client() as http:
        assert http.post("/tokenize", json={"messages": messages}).json()["tokens"] == expected
    completion = client.completions.create(
        model="m", prompt=rendered, max_tokens=8, temperature=0, stop=["<|"]
    )
    assert reply.choices[0].message.content == completion.choices[0].text.strip()


def test_streaming_completion_matches_the_plain_one_and_reports_usage(client):
    plain = client.completions.create(model="m", prompt="import ", max_tokens=10, temperature=0)
    stream = client.completions.create(
        model="m",
        prompt="import ",
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == plain.choices[0].text
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_streaming_chat_sends_the_role_first(client):
    chunks = list(
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=6, temperature=0, stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_a_prompt_beyond_the_context_is_a_400_naming_both_numbers(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model="m", prompt="word " * 40, max_tokens=50)
    message = error.value.body["message"]
    assert "maximum context length is 64" in message and "50 for the completion" in message
    assert error.value.body["code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    "bad", [{"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"n": 0}, {"max_tokens": -2}]
)
def test_invalid_parameters_are_a_422_in_openai_shape(client, bad):
    with pytest.raises(openai.UnprocessableEntityError) as error:
        client.completions.create(model="m", prompt="x", **bad)
    assert set(error.value.body) >= {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"n": 1.5}, "n"),
        ({"n": True}, "n"),
        ({"ignore_eos": 0}, "ignore_eos"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"stop": [5]}, "stop.0"),
        ({"stop": 5}, "stop"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": [[]]}, "prompt.0"),
        ({"prompt": [-1]}, "prompt.0"),
        ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ],
)
def test_what_the_schema_refuses_is_a_422_naming_the_field_as_the_request_does(server, bad, field):
    with server.client() as http:
        response = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 2, **bad})
    error = response.json()["error"]
    assert response.status_code == 422 and error["param"] == field, error
    assert error["message"].startswith(f"{field}: ") and "function-after" not in error["message"]


def test_integers_written_with_a_zero_fraction_are_integers_as_in_json_schema(server):
    with server.client() as http:
        response = http.post("/v1/completions", json={"prompt": [1.0, 2.0], "max_tokens": 2.0, "n": 2.0})
    assert response.status_code == 200, response.text
    assert len(response.json()["choices"]) == 2 and response.json()["usage"]["prompt_tokens"] == 2


def test_tokenize_and_embed_say_which_fields_they_need_when_given_none(server):
    with server.client() as http:
        tokenize = http.post("/tokenize", json={})
        embed = http.post("/embed", json={"text": None})
        wrong = http.post("/tokenize", json={"prompt": "x", "add_special_tokens": "yes"})
    assert (
        tokenize.status_code == 422 and "give 'prompt' or 'messages'" in tokenize.json()["error"]["message"]
    )
    assert embed.status_code == 422 and embed.json()["error"]["param"] == "text"
    assert wrong.status_code == 422 and wrong.json()["error"]["param"] == "add_special_tokens"


def test_the_schema_documents_each_routes_errors_and_streams(server):
    with server.client() as http:
        paths = http.get("/openapi.json").json()["paths"]
    generate = paths["/v1/completions"]["post"]["responses"]
    assert set(generate) == {"200", "400", "401", "404", "413", "422", "429", "503"}
    assert set(generate["200"]["content"]) == {"application/json", "text/event-stream"}
    assert generate["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert set(paths["/health"]["get"]["responses"]) == {"200", "503"}


def test_unknown_fields_are_ignored(server):
    with server.client() as http:
        response = http.post(
            "/v1/completions", json={"prompt": "x", "max_tokens": 2, "user": "me", "frequency_penalty": 0}
        )
    assert response.status_code == 200


def test_a_full_queue_is_a_429(client, server, monkeypatch):
    from engine.server.batcher import QueueFull

    def full(*_args, **_kwargs):
        raise QueueFull("the request queue is full (64 waiting); retry later")

    monkeypatch.setattr(server.served.batcher, "submit_many", full)
    with pytest.raises(openai.RateLimitError):
        client.completions.create(model="m", prompt="x", max_tokens=2)


def test_concurrent_greedy_requests_get_the_same_text_as_alone(client):
    prompts = ["def ", "class Foo", "import os\n", "x = ", "# a comment", "return", "for i in", "if not"]
    alone = [
        client.completions.create(model="m", prompt=p, max_tokens=12, temperature=0).choices[0].text
        for p in prompts
    ]
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        together = list(
            pool.map(
                lambda p: (
                    client.completions.create(model="m", prompt=p, max_tokens=12, temperature=0)
                    .choices[0]
                    .text
                ),
                prompts,
            )
        )
    assert together == alone


# -- vLLM's tokenizer endpoints and metrics -------------------------------------------------------------


def test_tokenize_detokenize_and_tokenizer_info(server):
    with server.client() as http:
        tokens = http.post("/tokenize", json={"prompt": "def f(x):"}).json()
        assert tokens["count"] == len(tokens["tokens"]) and tokens["max_model_len"] == 64
        text = http.post("/detokenize", json={"tokens": tokens["tokens"]}).json()["prompt"]
        assert text == "def f(x):"
        chat = http.post("/tokenize", json={"messages": [{"role": "user", "content": "hi"}]}).json()
        assert chat["count"] > 2
        info = http.get("/tokenizer_info").json()
        assert info["vocab_size"] == 512 and info["eos_token"] == "</s>"
        assert http.post("/detokenize", json={"tokens": [99999]}).status_code == 400


def test_metrics_count_requests_and_tokens(client, server):
    client.completions.create(model="m", prompt="x", max_tokens=3, temperature=0)
    with server.client() as http:
        text = http.get("/metrics").text
    assert 'llmodel_requests_total{endpoint="/v1/completions",status="200"}' in text
    assert "llmodel_generation_tokens_total" in text and "llmodel_time_to_first_token_seconds_bucket" in text
    assert "llmodel_queue_depth" in text and "llmodel_batch_size" in text


# -- guards ----------------------------------------------------------------------------------------------


def test_an_api_key_is_required_when_set_but_health_stays_public(model_dir):
    with live_server(model_dir, api_key=API_KEY) as live:
        keyed = openai.OpenAI(base_url=f"{live.url}/v1", api_key=API_KEY, max_retries=0)
        assert keyed.completions.create(model="m", prompt="x", max_tokens=1).choices
        wrong = openai.OpenAI(base_url=f"{live.url}/v1", api_key="wrong-key-123", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.completions.create(model="m", prompt="x", max_tokens=1)
        with live.client() as http:
            assert http.get("/health").status_code == 200
            assert http.get("/model-info").status_code == 401


def test_rate_limit_answers_429_once_the_bucket_is_empty(model_dir):
    with live_server(model_dir, rate_limit=1.0) as live, live.client() as http:
        codes = [http.get("/v1/models").status_code for _ in range(5)]
    assert codes[:2] == [200, 200] and 429 in codes


def test_oversized_bodies_are_refused(model_dir):
    with live_server(model_dir, max_body=1000) as live, live.client() as http:
        response = http.post("/v1/completions", json={"prompt": "x" * 5000})
    assert response.status_code == 413


def test_binding_beyond_loopback_needs_a_key(monkeypatch):
    monkeypatch.delenv("LLMODEL_API_KEY", raising=False)
    with pytest.raises(LLModelError, match="--api-key"):
        resolve_api_key("0.0.0.0", None)
    assert resolve_api_key("127.0.0.1", None) is None
    assert resolve_api_key("0.0.0.0", API_KEY) == API_KEY
    monkeypatch.setenv("LLMODEL_API_KEY", API_KEY)
    assert resolve_api_key("::", None) == API_KEY


def test_logprob_values_are_finite(client):
    result = client.completions.create(model="m", prompt="def f", max_tokens=4, logprobs=2, temperature=0)
    assert all(math.isfinite(lp) for lp in result.choices[0].logprobs.token_logprobs)
    assert len(result.choices[0].logprobs.tokens) == result.usage.completion_tokens
