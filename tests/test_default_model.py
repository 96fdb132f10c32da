"""The shipped default model: small, loaded by `antiphon serve` with no --model, and answering spoken
prompts it never heard in training, in a voice it never heard, in its monologue."""

from __future__ import annotations

import asyncio
import json
import random

import numpy as np
import pytest

from antiphon.client.chat import SAMPLE_RATE, chat_url, talk
from antiphon.models.configs import DEFAULT_MODEL
from antiphon.models.data import tasks
from antiphon.models.loader import WEIGHTS_DIR, load_model
from conftest import ServerProcess
from speech import espeak

HELD_OUT_VOICE = "en-gb-x-gbcwmd"  # an accent the training conversations never use
SHIPPED = WEIGHTS_DIR / DEFAULT_MODEL

# The codec ships first (tests/test_shipped_codec.py); these run once the LM ships beside it.
pytestmark = pytest.mark.skipif(not (SHIPPED / "config.json").is_file(),
                                reason="the default model's LM does not ship yet")


def held_out_prompts() -> list[tasks.Exchange]:
    """One held-out prompt per answer-bearing task, drawn from the held-out pools."""
    rng = random.Random(7)
    chosen = [tasks.arithmetic(rng, True), tasks.counting(rng, True), tasks.spell(rng, True),
              tasks.greeting(rng, True)]
    while len(chosen) < 6:
        exchange = tasks.yes_no(rng, True)
        if exchange.task not in {e.task for e in chosen}:
            chosen.append(exchange)
    return chosen


def spoken(prompt: str) -> np.ndarray:
    """A second of silence, the prompt, and four seconds for the answer."""
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    return np.concatenate([silence, 0.5 * espeak(prompt, HELD_OUT_VOICE), silence, silence, silence, silence])


def test_shipped_weights_are_small_and_load_in_kyutais_layout():
    files = {path.name: path.stat().st_size for path in SHIPPED.iterdir()}
    assert {"config.json", "model.safetensors", "mimi.safetensors", "mimi_config.json",
            "tokenizer.model"} <= set(files)
    assert sum(files.values()) < 60 * 10**6
    config = json.loads((SHIPPED / "config.json").read_text())
    assert config["moshi_name"] == "model.safetensors" and config["mimi_name"] == "mimi.safetensors"
    model = load_model(DEFAULT_MODEL)
    assert not model.untrained and model.name == DEFAULT_MODEL
    assert model.lm.num_audio_codebooks == 16 and model.lm.dep_q == 8


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    process = ServerProcess(None, "--slots", "2", log=tmp_path_factory.mktemp("default") / "server.log")
    yield process
    process.stop()


def test_serve_without_a_model_answers_held_out_prompts(default_server):
    info = json.loads(default_server.get("/api/info"))
    assert info["model"] == DEFAULT_MODEL and not info.get("untrained")
    prompts = held_out_prompts()

    async def ask_all():
        gate = asyncio.Semaphore(2)

        async def ask(exchange):
            async with gate:
                return await talk(chat_url(default_server.base, text_seed=1, audio_seed=1), spoken(exchange.user))
        return await asyncio.gather(*(ask(e) for e in prompts))

    replies = asyncio.run(ask_all())
    answered = []
    for exchange, reply in zip(prompts, replies):
        assert not reply.errors
        words, expected = reply.monologue.split(), exchange.answer.replace(",", "").split()
        answered.append(words[:len(expected)] == expected)
        print(f"{exchange.user!r} -> {reply.monologue.strip()!r} (expected {exchange.answer!r})")
        assert np.abs(reply.pcm).max() > 0.05  # the agent speaks
    assert sum(answered) >= len(prompts) - 1


def test_browser_page_shows_the_answers_to_a_spoken_microphone(default_server, tmp_path):
    """Headless Chromium with a fake microphone speaking two held-out prompts: the page's monologue shows
    the right answers."""
    import sphn

    from browser import chromium_page

    first, second = held_out_prompts()[0], held_out_prompts()[4]
    wav = tmp_path / "microphone.wav"
    sphn.write_wav(str(wav), np.concatenate([spoken(first.user), spoken(second.user)]), SAMPLE_RATE)
    with chromium_page(wav) as page:
        page.goto(f"{default_server.http}/")
        page.click("#connect")
        page.wait_for_function("document.getElementById('status').dataset.kind === 'live'", timeout=20000)
        page.wait_for_function(
            f"document.getElementById('monologue').textContent.includes({first.answer!r}) && "
            f"document.getElementById('monologue').textContent.split({first.answer!r})[1].includes({second.answer!r})",
            timeout=30000)
        monologue = page.inner_text("#monologue")
        page.click("#connect")
    words = monologue.split()
    print(f"page monologue: {monologue!r}")
    assert first.answer in words and second.answer in words[words.index(first.answer) + 1:]
