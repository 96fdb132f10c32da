"""The synthetic conversations: agent words aligned to the agent's audio, timing rules, held-out split."""

from __future__ import annotations

import numpy as np
import pytest

from antiphon.models.data import tasks
from antiphon.models.data.conversations import (ACCENTS, FILLERS, SAMPLE_RATE, SHAPED_FORMANTS, TRAINING_ONLY_ACCENTS,
                                                 Generator, voices)
from antiphon.models.data.dataset import generate, read_split
from antiphon.models.data.opus_channel import as_served, round_trip_delay, through_opus


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    generate(root, {"train": 8, "heldout": 4}, seed=3, shard_size=5)
    return root


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm ** 2))) if len(pcm) else 0.0


def test_agent_words_are_where_the_agent_speaks(sample):
    for record in read_split(sample, "train"):
        agent, words = record.agent, record.meta["agent_words"]
        assert words
        speaking = np.zeros(len(agent), dtype=bool)
        for word in words:
            start, end = int(word["start"] * SAMPLE_RATE), int(word["end"] * SAMPLE_RATE)
            assert end > start
            assert rms(agent[start:end]) > 0.02, (record.meta["id"], word)  # each word is audible
            speaking[max(0, start - 2400):end + 2400] = True  # ± 0.1 s for onsets and releases
        assert rms(agent[~speaking]) < 0.002, record.meta["id"]  # and nothing sounds elsewhere
        spoken = " ".join(w["text"] for w in words)
        assert spoken == " ".join(turn["agent"] for turn in record.meta["turns"])


def test_replies_come_after_the_user_and_interruptions_are_yielded_to(sample):
    turns = [turn for split in ("train", "heldout") for record in read_split(sample, split)
             for turn in record.meta["turns"]]
    turns += first_interrupted_conversation().turns  # the sample may hold none
    for turn in turns:
        assert 0.2 <= turn["agent_start"] - turn["user_end"] <= 0.8 + 1e-6
        if "interrupt" in turn:
            assert 0 < turn["agent_stop"] - turn["interrupt_start"] <= 1.0
        else:  # the reply starts with the expected answer
            answer = turn["answer"].split()
            assert turn["agent"].split()[:len(answer)] == answer


def first_interrupted_conversation():
    generator = Generator()
    for index in range(200):
        conversation, _, _ = generator.conversation(index, "train", seed=3)
        if "interruption" in conversation.tasks:
            return conversation
    raise AssertionError("no interruption in 200 conversations")


def test_held_out_split_is_disjoint(sample):
    assert not set(voices("train")) & set(voices("heldout"))
    train_questions = {turn["user"] for r in read_split(sample, "train") for turn in r.meta["turns"]}
    # held-out voices are espeak-ng's own, and their tracks recordings; some training voices have their
    # formants moved, and some training tracks come through Opus
    for augmentation in ("formant_shape", "opus"):
        assert any(record.meta["augment"][augmentation] for record in read_split(sample, "train"))
    for record in read_split(sample, "heldout"):
        assert record.meta["user_voice"] in voices("heldout")
        assert not record.meta["augment"]["formant_shape"] and not record.meta["augment"]["opus"]
        for turn in record.meta["turns"]:
            assert turn["user"] not in train_questions
    # the rule itself: no arithmetic question is in both pools, and every held-out sum is taught in
    # training with another wording
    import random
    train = [tasks.arithmetic(random.Random(i), False) for i in range(3000)]
    heldout = [tasks.arithmetic(random.Random(i), True) for i in range(300)]
    assert heldout and not {e.user for e in train} & {e.user for e in heldout}
    def sum_asked(exchange):
        return " ".join(exchange.user.split()[-3:])
    assert {sum_asked(e) for e in heldout} <= {sum_asked(e) for e in train}


def test_some_training_prompts_start_with_a_filler_and_held_out_prompts_never_do():
    generator = Generator()
    def fillers(split: str) -> list[bool]:
        return [turn["user"].split(",")[0] in FILLERS for index in range(12)
                for turn in generator.conversation(index, split, seed=3)[0].turns]
    training, held_out = fillers("train"), fillers("heldout")
    assert 0 < sum(training) < len(training)
    assert not any(held_out)


def test_same_seed_same_dataset(sample, tmp_path):
    """Every choice follows from the seed, and so does the sound, to the sample: espeak-ng's state from
    what the process said before (here, the sample and the conversations of the tests before) does not
    reach a conversation."""
    first_interrupted_conversation()
    generate(tmp_path, {"train": 3}, seed=3, shard_size=5)
    for again, first in zip(read_split(tmp_path, "train"), list(read_split(sample, "train"))[:3], strict=True):
        assert again.meta == first.meta
        assert np.array_equal(again.tracks["user"], first.tracks["user"])
        assert np.array_equal(again.tracks["agent"], first.tracks["agent"])


@pytest.mark.parametrize("accent", ACCENTS + TRAINING_ONLY_ACCENTS)
def test_every_accent_speaks_and_marks_each_word(accent):
    # West Midlands English drops the h of "hello" and "how", which cost espeak-ng's marks their place
    text = "hello there how are you my friend"
    spoken = Generator().utterance(text, voice=f"{accent}+m1", rate=160, pitch=50, pitch_range=50)
    assert rms(spoken.pcm) > 0.01 and [word.text for word in spoken.words] == text.split()
    for word, following in zip(spoken.words, spoken.words[1:]):
        assert word.start < word.end <= following.start + 1e-3  # a word ends on a sample, the next starts on a ms
        assert rms(spoken.pcm[int(word.start * SAMPLE_RATE):int(word.end * SAMPLE_RATE)]) > 0.02, word


def test_a_warped_voice_moves_its_formants_and_keeps_its_words_on_its_sound():
    generator = Generator()
    voice = dict(voice="en-us+m3", rate=160, pitch=50, pitch_range=50)
    plain = generator.utterance("the cat is asleep", **voice)
    for warp in (0.9, 1.1):
        warped = generator.utterance("the cat is asleep", **voice, warp=warp)
        assert warped.duration == pytest.approx(plain.duration / warp, rel=0.01)
        assert spectral_centroid(warped.pcm) == pytest.approx(spectral_centroid(plain.pcm) * warp, rel=0.05)
        for before, after in zip(plain.words, warped.words, strict=True):
            assert after.start == pytest.approx(before.start / warp, abs=0.01)
            assert after.end == pytest.approx(before.end / warp, abs=0.01)
            assert rms(warped.pcm[int(after.start * SAMPLE_RATE):int(after.end * SAMPLE_RATE)]) > 0.02


def spectral_centroid(pcm: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(pcm)) ** 2
    return float((np.fft.rfftfreq(len(pcm), 1 / SAMPLE_RATE) * power).sum() / power.sum())


def test_a_shaped_voice_moves_its_formants_and_keeps_its_words():
    generator = Generator()
    voice = dict(voice="en-us+m3", rate=160, pitch=50, pitch_range=50)
    text = "the cat is asleep"
    plain = generator.utterance(text, **voice)
    # the shaped voice is the voice's own variant with its formants rewritten: unmoved, it is the voice
    unmoved_shape = {formant: [1.0, 1.0, 1.0] for formant in SHAPED_FORMANTS}
    unmoved = generator.utterance(text, **voice, formant_shape=unmoved_shape)
    assert np.array_equal(unmoved.pcm, plain.pcm)
    for factor in (0.92, 1.08):
        shape = {formant: [factor, 1.0, 1.0] for formant in SHAPED_FORMANTS}
        shaped = generator.utterance(text, **voice, formant_shape=shape)
        assert spectral_centroid(shaped.pcm) == pytest.approx(spectral_centroid(plain.pcm) * factor, rel=0.05)
        assert [word.start for word in shaped.words] == [word.start for word in plain.words]


def test_a_track_through_opus_is_lossy_and_keeps_its_words_where_their_marks_are():
    spoken = Generator().utterance("how do you spell cat", voice="en-gb-scotland+m2", rate=160, pitch=50,
                                   pitch_range=50)
    pcm = np.pad(spoken.pcm, (4800, 4800))
    def best_lag(decoded: np.ndarray) -> int:
        span = slice(2400, len(pcm) - 2400)
        return max(range(-400, 400),
                   key=lambda lag: float(np.dot(pcm[span], decoded[span.start + lag:span.stop + lag])))
    aligned, served = through_opus(pcm), as_served(pcm)
    assert len(aligned) == len(served) == len(pcm)
    assert not np.allclose(aligned, pcm, atol=1e-3)  # lossy
    assert abs(best_lag(aligned)) <= 1
    assert abs(best_lag(served) - round_trip_delay()) <= 1  # as the server hears it: later by the look-ahead


def test_a_shifted_vowel_is_said_instead_and_every_word_keeps_its_mark():
    generator = Generator()
    voice = dict(voice="en-gb-x-rp+m1", rate=160, pitch=50, pitch_range=50)
    text = "how do you spell cup, please"
    plain = generator.utterance(text, **voice)
    shifted = generator.utterance(text, **voice, vowel_shift={"V": "U", "i:": "eI"})
    said, shifted_said = [name for name, _ in plain.phonemes], [name for name, _ in shifted.phonemes]
    assert "V" in said and "i:" in said
    assert "V" not in shifted_said and "i:" not in shifted_said
    assert shifted_said.count("U") == said.count("U") + said.count("V")
    assert [word.text for word in shifted.words] == [word.strip(",") for word in text.split()]
    for word, following in zip(shifted.words, shifted.words[1:]):
        assert word.start < word.end <= following.start + 1e-3
        assert rms(shifted.pcm[int(word.start * SAMPLE_RATE):int(word.end * SAMPLE_RATE)]) > 0.02, word


def test_a_held_out_split_can_take_training_voices_or_prompts_for_a_diagnosis(tmp_path):
    import random
    def pool(held_out: bool) -> set[str]:  # every prompt of a pool (each holds a few hundred at most)
        return {tasks.TASKS[name](random.Random(seed), held_out).user
                for name in tasks.TASKS if name != "interruption" for seed in range(20000)}
    training_prompts, held_out_prompts = pool(False), pool(True)
    for pools in (("train", "heldout"), ("heldout", "train")):
        root = tmp_path / "-".join(pools)
        generate(root, {"heldout": 4}, seed=3, shard_size=4, heldout_voices=pools[0], heldout_prompts=pools[1])
        for record in read_split(root, "heldout"):
            assert record.meta["user_voice"] in voices(pools[0])
            for turn in record.meta["turns"]:
                if turn["task"] != "interruption":
                    assert turn["user"] in (training_prompts if pools[1] == "train" else held_out_prompts)
        assert f"--heldout-{'voices' if pools[0] == 'train' else 'prompts'} train" in (root / "card.md").read_text()
