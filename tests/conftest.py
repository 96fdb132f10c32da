from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

# Exact agreement between a session decoded in a batch and decoded alone needs kernels whose result for
# one row does not depend on the batch's other rows. On some CPUs (AVX-512 ones) MKL's matrix products
# and oneDNN's convolutions sum in an order that depends on the number of rows, and the last bits differ.
# MKL's strict numerical reproducibility fixes the order of its sums; set before torch loads MKL, and
# inherited by the servers the tests start. `batch_invariant_kernels` takes care of the convolutions.
os.environ.setdefault("MKL_CBWR", "AVX2,STRICT")

import sentencepiece  # noqa: E402
import torch  # noqa: E402

from antiphon.client.local_server import LocalServer
from antiphon.models.checkpoint import write_kyutai_folder
from antiphon.models.configs import builtin_config
from antiphon.models.loader import build_random

_CORPUS = """hello there how are you today
what is three plus four the answer is seven
please spell the word cat c a t
count with me one two three four five six seven eight nine ten
is the sky blue yes the sky is blue
is red a number no red is a colour
repeat after me good morning good morning
thank you goodbye see you soon
""".splitlines()


@pytest.fixture(scope="session")
def tokenizer_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(_CORPUS * 20))
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=60, model_type="unigram",
        pad_id=3, unk_id=1, bos_id=-1, eos_id=-1, minloglevel=2)
    return folder / "tokenizer.model"


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory, tokenizer_model) -> Path:
    """A random-weight test-small model written in Kyutai's layout."""
    lm_config, mimi_config = builtin_config("test-small")
    lm_config["text_card"] = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model)).vocab_size()
    mimi, lm = build_random(lm_config, mimi_config, seed=1234)
    return write_kyutai_folder(tmp_path_factory.mktemp("test-small"), lm, mimi, lm_config, mimi_config,
                               tokenizer_model)


class ServerProcess(LocalServer):
    """`antiphon serve` in a subprocess on 127.0.0.1, as a user starts it; `model` None serves the
    default model, as `antiphon serve` with no --model does."""

    def __init__(self, model: Path | None, *args: str, log: Path, tls: ssl.SSLContext | None = None) -> None:
        super().__init__([*(["--model", str(model)] if model else []), *args], log=log, tls=tls,
                         ready_seconds=120)


@pytest.fixture(scope="module")
def server(small_checkpoint, tmp_path_factory):
    """A real server with 3 slots on the small random checkpoint."""
    process = ServerProcess(small_checkpoint, "--slots", "3", "--idle-seconds", "3",
                            log=tmp_path_factory.mktemp("server") / "server.log")
    yield process
    process.stop()


@pytest.fixture
def batch_invariant_kernels():
    """Convolutions without oneDNN, whose kernels for one row and for several differ in their last bits
    (torch's own convolution unrolls each row into one matrix product)."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = enabled


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
