"""One model server, several adapters over one base: the OpenAI ``model`` field picks one, and a batch mixes them."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import openai
import pytest
import torch

from engine.adapters.files import save_adapter
from engine.adapters.lora import apply_lora
from engine.adapters.settings import LoraSettings
from engine.generation import SamplingParams, generate
from engine.model import Transformer
from engine.runs import checkpoint as ckpt
from engine.runs.loading import load_for_inference
from tests.serving_fixtures import live_server

PROMPTS = ["def ", "class Foo", "import os\n", "x = 1\n"]


def random_adapter(base: ckpt.Checkpoint, directory: Path, seed: int, targets: list[str]) -> Path:
    """An adapter with non-zero updates (as after training), saved for ``base``."""
    torch.manual_seed(seed)
    model = Transformer(base.model_config)
    ckpt.load_weights(base, model)
    settings = LoraSettings(rank=4, alpha=8, dropout=0.0, target_modules=targets)
    apply_lora(model, settings)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.3)
    return save_adapter(model, directory, settings, base).path


@pytest.fixture(scope="module")
def adapters(served_run_dir, tmp_path_factory) -> dict[str, Path]:
    base = ckpt.resolve_checkpoint(served_run_dir)
    root = tmp_path_factory.mktemp("adapters")
    return {
        "terse": random_adapter(base, root / "terse", 1, ["q_proj", "v_proj"]),
        "verbose": random_adapter(base, root / "verbose", 2, ["all-linear"]),
    }


@pytest.fixture(scope="module")
def server(served_run_dir, adapters):
    with live_server(served_run_dir, adapters=adapters) as live:
        yield live


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def alone(model_dir: Path, adapter: Path | None, prompt: str, tokens: int = 12) -> str:
    """An independent computation: the adapter merged into a fresh copy of the base, greedy generation."""
    loaded = load_for_inference(model_dir, adapter=adapter, device="cpu")
    params = SamplingParams(max_new_tokens=tokens, do_sample=False, stop_at_eos=False)
    return generate(loaded.model, loaded.tokenizer, prompt, params)[0].text


def complete(client: openai.OpenAI, model: str, prompt: str) -> str:
    reply = client.completions.create(
        model=model, prompt=prompt, max_tokens=12, temperature=0, extra_body={"ignore_eos": True}
    )
    return reply.choices[0].text


def test_models_lists_the_base_and_each_adapter_with_its_parent(client, server):
    listed = {m.id: m for m in client.models.list().data}
    assert set(listed) == {server.served.name, "terse", "verbose"}
    assert listed["terse"].parent == server.served.name


def test_the_model_field_picks_the_adapter_and_each_answers_like_its_merged_model(
    client, server, served_run_dir, adapters
):
    for prompt in PROMPTS[:2]:
        base = complete(client, server.served.name, prompt)
        assert base == alone(served_run_dir, None, prompt)
        for name, path in adapters.items():
            assert complete(client, name, prompt) == alone(served_run_dir, path, prompt)
    assert complete(client, "terse", "def ") != complete(client, server.served.name, "def "), (
        "the adapter acts"
    )


def test_a_batch_mixing_base_and_adapters_gives_each_request_its_own_model(client, server):
    jobs = [(model, prompt) for prompt in PROMPTS for model in (server.served.name, "terse", "verbose")]
    expected = [complete(client, model, prompt) for model, prompt in jobs]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(lambda job: complete(client, *job), jobs))
    assert together == expected


def test_an_unknown_model_name_is_a_404_naming_the_choices(client):
    with pytest.raises(openai.NotFoundError) as error:
        client.completions.create(model="nope", prompt="x", max_tokens=2)
    assert "terse" in error.value.body["message"] and "verbose" in error.value.body["message"]
    with pytest.raises(openai.NotFoundError) as error:
        client.completions.create(model="m" * 100_000, prompt="x", max_tokens=2)
    assert len(error.value.body["message"]) < 300 and "100,000 characters" in error.value.body["message"]


def test_chat_and_echo_scoring_go_through_the_chosen_adapter(client, server, served_run_dir, adapters):
    reply = client.chat.completions.create(
        model="verbose", messages=[{"role": "user", "content": "hi"}], max_tokens=6, temperature=0
    )
    assert reply.model == server.served.name and reply.choices[0].finish_reason in ("stop", "length")
    scored = client.completions.create(
        model="terse", prompt="def main():", max_tokens=0, echo=True, logprobs=1
    )
    base_scored = client.completions.create(
        model=server.served.name, prompt="def main():", max_tokens=0, echo=True, logprobs=1
    )
    loaded = load_for_inference(served_run_dir, adapter=adapters["terse"], device="cpu")
    ids = loaded.tokenizer.encode("def main():", add_bos=True)
    with torch.inference_mode():
        expected = loaded.model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    got = scored.choices[0].logprobs.token_logprobs[1:]
    assert got == pytest.approx([expected[i - 1, ids[i]].item() for i in range(1, len(ids))], abs=1e-4)
    assert got != base_scored.choices[0].logprobs.token_logprobs[1:]


def test_an_adapter_for_another_base_is_refused_when_the_server_loads(
    served_run_dir, tmp_path, config_for_other_base
):
    with live_server(served_run_dir, load=False, adapters={"foreign": config_for_other_base}) as live:
        live.served.load()
        assert not live.served.ready and "not on" in (live.served.error or "")


@pytest.fixture
def config_for_other_base(tmp_path, served_run_dir) -> Path:
    base = ckpt.resolve_checkpoint(served_run_dir)
    torch.manual_seed(5)
    other = ckpt.save_checkpoint(
        tmp_path / "other" / "checkpoints",
        step=1,
        model=Transformer(base.model_config),
        model_config=base.model_config,
    )
    return random_adapter(other, tmp_path / "foreign", 3, ["q_proj"])
