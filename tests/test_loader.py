"""Loading models in Kyutai's layout, and the one-line errors for broken folders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from antiphon.models.loader import ModelLoadError, load_model


def test_folder_round_trip(small_checkpoint):
    model = load_model(str(small_checkpoint))
    assert model.name == small_checkpoint.name and not model.untrained
    config = json.loads((small_checkpoint / "config.json").read_text())
    assert model.lm.text_card == config["text_card"] and model.lm.dep_q == 8
    assert model.mimi.num_codebooks == 8 and model.mimi.frame_size == 1920
    again = load_model(str(small_checkpoint))
    for (name, a), (_, b) in zip(model.lm.state_dict().items(), again.lm.state_dict().items()):
        assert torch.equal(a, b), name


def test_random_weights_of_a_builtin_say_so(caplog):
    model = load_model("test-small", random_weights=True)
    assert model.untrained
    assert "RANDOM WEIGHTS" in caplog.text


def broken_copy(source, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("damage, culprit, words", [
    (lambda f: (f / "config.json").unlink(), "config.json", "missing"),
    (lambda f: (f / "config.json").write_text("{not json"), "config.json", "not valid JSON"),
    (lambda f: (f / "tokenizer.model").unlink(), "tokenizer.model", "missing"),
    (lambda f: (f / "tokenizer.model").write_bytes(b"garbage"), "tokenizer.model", "sentencepiece"),
    (lambda f: (f / "mimi.safetensors").write_bytes(b"\x00" * 16), "mimi.safetensors", "does not match"),
    (lambda f: (f / "config.json").write_text(json.dumps(
        {**json.loads((f / "config.json").read_text()), "dim": 96})), "model.safetensors", "size mismatch"),
    (lambda f: (f / "mimi_config.json").write_text(json.dumps(
        {**json.loads((f / "mimi_config.json").read_text()), "quantizer": {
            **json.loads((f / "mimi_config.json").read_text())["quantizer"], "dimension": 16}})),
     "mimi.safetensors", "size mismatch"),
])
def test_broken_folder_is_one_line_naming_the_file(small_checkpoint, tmp_path, damage, culprit, words):
    folder = broken_copy(small_checkpoint, tmp_path)
    damage(folder)
    with pytest.raises(ModelLoadError) as error:
        load_model(str(folder))
    message = str(error.value)
    assert "\n" not in message and culprit in message and words in message, message


def test_cli_reports_bad_model_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "antiphon.server", "serve", "--model", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"antiphon: error: {tmp_path / 'config.json'}: missing"]
    assert "Traceback" not in result.stderr


def test_builtin_without_weights_points_to_the_way_out():
    with pytest.raises(ModelLoadError, match="--random-weights"):
        load_model("moshi-7b")


def test_a_shorter_context_changes_only_what_lies_beyond_it(small_checkpoint):
    """--context-frames keeps less KV cache a session: the first frames decode exactly as with the
    model's own context, and the session goes on past the shorter one."""
    import numpy as np

    from antiphon.models.reference import frames_of, reference_run
    from speech import seconds_of_speech

    frames = frames_of(seconds_of_speech(4.0))  # 50 frames
    full = reference_run(load_model(str(small_checkpoint)), frames)
    short_model = load_model(str(small_checkpoint), context=16)
    assert short_model.lm.transformer.layers[0].self_attn.context == 16
    short = reference_run(short_model, frames)
    assert len(short.text) == len(full.text) == len(frames) - 1
    assert short.text[:15] == full.text[:15]
    assert all(np.array_equal(a, b) for a, b in zip(short.audio[:15], full.audio[:15]))
    assert short.text != full.text  # beyond the window, the model sees less
    with pytest.raises(ModelLoadError, match="at least 1"):
        load_model(str(small_checkpoint), context=0)
