"""Synthetic full-duplex conversations: a user track and an agent track (24 kHz mono each), with every
word and phoneme of both sides time-aligned.

The agent has one voice; users have many (espeak-ng accents x voice variants, at varied rate, pitch and
range; in training also resampled, as by a longer or shorter vocal tract, some with vowels shifted, as in
an accent no voice has, and some with their formants moved one by one, as in a voice no variant has), and
their track is augmented (noise, a synthetic room, level; in training, most also through Opus as a client
sends it). The held-out split uses user voices and task instances that training never sees. Everything
follows from the seed.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import sphn

from .espeak import Pronunciation, Speaker, Utterance, Word
from .forked import call_in_child
from .opus_channel import through_opus
from .tasks import TASK_WEIGHTS, TASKS, Exchange

SAMPLE_RATE = 24000
AGENT_VOICE = dict(voice="en-us+f3", rate=165, pitch=55, pitch_range=50)
ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029", "en-gb-x-gbcwmd"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f4", "f5", "Alex", "Andy", "Annie",
            "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "Denis", "ed", "edward",
            "Gene", "gustave", "Henrique", "Hugo", "Jacky", "john", "Lee", "linda", "Marco", "Mario", "max",
            "Michael", "Andrea", "Diogo", "iven", "kaukovalta", "grandma", "grandpa", "norbert", "paul"]
# Held out: every voice of one accent, and a few variants in every accent.
HELD_OUT_ACCENTS = {"en-gb-x-gbcwmd"}
HELD_OUT_VARIANTS = {"m6", "f5", "Annie", "Michael", "iven", "grandpa"}
# Heard in training only, so that the held-out voices stay as they were: each accent more in training
# helps the model follow the one it never hears (run 4 answered 60 % of prompts in it, 81 % elsewhere).
TRAINING_ONLY_ACCENTS = ["en-us-nyc"]
# Training users' speech is resampled by a factor from this range (played back faster or slower), which
# moves every formant and the pitch together, as a longer or shorter vocal tract would: speakers between
# and beyond espeak-ng's variants. Held-out speech is as espeak-ng says it.
VOCAL_TRACT_WARP = (0.9, 1.1)
# Accents of English differ most in their vowels. A share of training users speaks with an accent no
# espeak-ng voice has: some of their vowels (how many: VOWELS_SHIFTED) moved to a neighbour on the vowel
# chart (espeak-ng's mnemonics), the same ones throughout the conversation. Held-out speech is as
# espeak-ng's voices say it.
VOWEL_SHIFT_SHARE = 0.75
VOWELS_SHIFTED = (3, 6)
VOWEL_NEIGHBOURS = {
    "I": ["i:", "E"], "i:": ["I", "eI"], "E": ["I", "a", "eI"], "a": ["E", "V", "A:"], "V": ["a", "U", "0", "@"],
    "U": ["V", "u:"], "u:": ["U", "oU"], "0": ["O:", "V"], "O:": ["0", "oU"], "A:": ["a", "O:"], "3:": ["E", "@"],
    "@": ["V", "I"], "eI": ["E", "aI", "i:"], "aI": ["eI", "OI", "A:"], "OI": ["aI", "O:"], "aU": ["a", "oU"],
    "oU": ["O:", "aU", "u:"], "e@": ["E", "eI"], "I@": ["i:", "e@"], "A@": ["A:", "O:"],
}
# A share of training users speaks with a voice no espeak-ng variant has: their variant's formants each
# moved on their own (frequency, height and width, by a factor from these ranges), rather than all together
# as the warp moves them. Held-out voices are espeak-ng's own.
FORMANT_SHAPE_SHARE = 0.5
FORMANT_SHAPE = {"frequency": (0.92, 1.08), "height": (0.7, 1.3), "width": (0.8, 1.25)}
SHAPED_FORMANTS = ("1", "2", "3", "4", "5")
# A share of training users is heard through a client's Opus round trip, as the server hears every user:
# an LM trained on recordings alone hears that audio less well (benchmarks/results/opus_listening.md).
# Held-out tracks are recordings: served, the client puts them through Opus.
OPUS_SHARE = 0.75
# A share of training prompts starts with a filler, so that what a prompt asks is heard in more settings
# than its few wordings (an unseen wording of a familiar fact cost run 8 about 5 points). Held-out
# prompts are said as the tasks word them.
FILLER_SHARE = 0.3
FILLERS = ["okay", "so", "um", "well", "alright", "now", "excuse me", "right", "hmm"]  # not "hey": a greeting
REPLY_GAP = (0.25, 0.45)        # seconds from the user's last word to the agent's first: a narrow band, so
                                # that the agent's turn-taking has a frame that decoding can learn to prefer
TURN_GAP = (0.4, 1.2)           # seconds from the agent's last word to the user's next turn
LEAD_SILENCE = (0.3, 2.5)       # seconds before the user's first word: sessions start with a pause
TAIL_SILENCE = (0.5, 2.0)       # seconds after the last word: the agent stays quiet once done
YIELD_DELAY = (0.25, 0.7)       # how soon the agent falls silent once interrupted (≤ 1 s in all)


@dataclass
class TimedWord:
    text: str
    start: float
    end: float


@dataclass
class Conversation:
    id: str
    split: str
    user_voice: str
    tasks: list[str]
    turns: list[dict]            # per exchange: user, agent (as spoken), answer, times
    agent_words: list[TimedWord] = field(default_factory=list)
    user_words: list[TimedWord] = field(default_factory=list)
    agent_phonemes: list[tuple[str, float]] = field(default_factory=list)
    user_phonemes: list[tuple[str, float]] = field(default_factory=list)
    augment: dict = field(default_factory=dict)
    duration: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def accent_label(accent: str) -> str:
    """An accent as reports name it: the held-out ones marked as such."""
    return f"{accent} (never in training)" if accent in HELD_OUT_ACCENTS else accent


def voices(split: str) -> list[str]:
    held_out = split == "heldout"
    accents = ACCENTS if held_out else ACCENTS + TRAINING_ONLY_ACCENTS
    return [f"{accent}+{variant}" for accent in accents for variant in VARIANTS
            if (accent in HELD_OUT_ACCENTS or variant in HELD_OUT_VARIANTS) == held_out]


class Generator:
    """Conversations and utterances, each made in a forked child of this process (see forked.py), from
    the espeak-ng engine as it was initialised: espeak-ng carries state from one synthesis to the next
    that its API cannot reset (after some sentences, a comma's pause in the next comes out 50 ms
    longer), so that a conversation follows from its seed alone, whatever the process made before."""

    def __init__(self, speaker: Speaker | None = None) -> None:
        self.speaker = speaker or Speaker()

    def utterance(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, warp: float = 1.0,
                  vowel_shift: dict[str, str] | None = None,
                  formant_shape: dict[str, list[float]] | None = None) -> Utterance:
        """`text` spoken, at 24 kHz; `warp` > 1 plays it faster and higher (see VOCAL_TRACT_WARP),
        `vowel_shift` says some vowels as others (see VOWEL_NEIGHBOURS), and `formant_shape` moves the
        voice's formants (see FORMANT_SHAPE)."""
        return call_in_child(self._utterance, text, voice, rate, pitch, pitch_range, warp, vowel_shift,
                             formant_shape)

    def conversation(self, index: int, split: str, seed: int, voices_from: str | None = None,
                     prompts_from: str | None = None) -> tuple[Conversation, np.ndarray, np.ndarray]:
        """Conversation `index` of `split`; `voices_from` and `prompts_from` take its user's voice or its
        prompts from the other split's pool (a diagnosis of which of the two a model fails on)."""
        return call_in_child(self._conversation, index, split, seed, voices_from, prompts_from)

    def _utterance(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, warp: float = 1.0,
                   vowel_shift: dict[str, str] | None = None,
                   formant_shape: dict[str, list[float]] | None = None) -> Utterance:
        if formant_shape:
            accent, variant = voice.split("+")
            self.speaker.add_variant("shaped", shaped_variant(self.speaker.variant_lines(variant), formant_shape))
            voice = f"{accent}+shaped"
        pronunciation = _shifted(vowel_shift) if vowel_shift else None
        spoken = self.speaker.say(text, voice, rate, pitch, pitch_range, pronunciation)
        pcm = sphn.resample(spoken.pcm, spoken.sample_rate, SAMPLE_RATE).astype(np.float32)
        if warp == 1.0:
            return Utterance(pcm, SAMPLE_RATE, spoken.words, spoken.phonemes)
        words = [Word(w.text, w.start / warp, w.end / warp) for w in spoken.words]
        return Utterance(_played_faster(pcm, warp), SAMPLE_RATE, words,
                         [(name, at / warp) for name, at in spoken.phonemes])

    def _conversation(self, index: int, split: str, seed: int, voices_from: str | None,
                      prompts_from: str | None) -> tuple[Conversation, np.ndarray, np.ndarray]:
        rng = random.Random(f"{seed}:{split}:{index}")
        held_out = split == "heldout"
        user_voice = dict(voice=rng.choice(voices(voices_from or split)), rate=rng.randint(125, 210),
                          pitch=rng.randint(25, 85), pitch_range=rng.randint(20, 90))
        if not held_out:  # drawn for training only, so that the held-out split stays as it was
            user_voice["warp"] = round(rng.uniform(*VOCAL_TRACT_WARP), 3)
            if rng.random() < VOWEL_SHIFT_SHARE:
                moved = rng.sample(sorted(VOWEL_NEIGHBOURS), rng.randint(*VOWELS_SHIFTED))
                user_voice["vowel_shift"] = {vowel: rng.choice(VOWEL_NEIGHBOURS[vowel]) for vowel in moved}
            if rng.random() < FORMANT_SHAPE_SHARE:
                user_voice["formant_shape"] = {formant: [round(rng.uniform(*FORMANT_SHAPE[measure]), 3)
                                                         for measure in ("frequency", "height", "width")]
                                               for formant in SHAPED_FORMANTS}
        names = rng.choices(list(TASK_WEIGHTS), weights=list(TASK_WEIGHTS.values()), k=rng.randint(1, 3))
        conversation = Conversation(f"{split}-{seed}-{index:06d}", split, user_voice["voice"], names, [])
        user_parts: list[tuple[float, np.ndarray]] = []
        agent_parts: list[tuple[float, np.ndarray]] = []
        clock = rng.uniform(*LEAD_SILENCE)
        for name in names:
            exchange = TASKS[name](rng, (prompts_from or split) == "heldout")
            if not held_out and rng.random() < FILLER_SHARE:
                exchange = replace(exchange, user=f"{rng.choice(FILLERS)}, {exchange.user}")
            clock = self._exchange(rng, exchange, user_voice, clock, conversation, user_parts, agent_parts)
            clock += rng.uniform(*TURN_GAP)
        total = int((clock + rng.uniform(*TAIL_SILENCE)) * SAMPLE_RATE)
        user = _mix(user_parts, total)
        agent = _mix(agent_parts, total)
        user, conversation.augment = augment_user(user, rng)
        conversation.augment["opus"] = not held_out and rng.random() < OPUS_SHARE
        if conversation.augment["opus"]:
            user = through_opus(user)
        conversation.augment["vocal_tract_warp"] = user_voice.get("warp", 1.0)
        conversation.augment["vowel_shift"] = user_voice.get("vowel_shift", {})
        conversation.augment["formant_shape"] = user_voice.get("formant_shape", {})
        conversation.duration = total / SAMPLE_RATE
        return conversation, user, agent

    def _exchange(self, rng: random.Random, exchange: Exchange, user_voice: dict, clock: float,
                  conversation: Conversation, user_parts: list, agent_parts: list) -> float:
        asked = self._utterance(exchange.user, **user_voice)
        _place(asked, clock, user_parts, conversation.user_words, conversation.user_phonemes)
        user_end = clock + asked.words[-1].end if asked.words else clock + asked.duration
        reply_start = user_end + rng.uniform(*REPLY_GAP)
        reply = self._utterance(exchange.agent, **AGENT_VOICE)
        turn = {"task": exchange.task, "user": exchange.user, "answer": _plain(exchange.answer),
                "user_start": clock, "user_end": user_end, "agent_start": reply_start}
        if exchange.interrupt:
            # The user talks over the agent after a few words; the agent stops at a word boundary
            # within YIELD_DELAY of the interruption's start.
            spoken = reply.words
            cut_after = rng.randint(2, max(2, len(spoken) - 3))
            interrupt_at = reply_start + spoken[cut_after].start + rng.uniform(0.0, 0.2)
            stop_by = interrupt_at + rng.uniform(*YIELD_DELAY)
            kept = [w for w in spoken if reply_start + w.end <= stop_by] or spoken[:1]
            reply = _truncate(reply, kept[-1].end)
            interruption = self._utterance(exchange.interrupt, **user_voice)
            _place(interruption, interrupt_at, user_parts, conversation.user_words, conversation.user_phonemes)
            turn.update(interrupt=exchange.interrupt, interrupt_start=interrupt_at,
                        agent_stop=reply_start + kept[-1].end)
            user_end = interrupt_at + interruption.duration
        _place(reply, reply_start, agent_parts, conversation.agent_words, conversation.agent_phonemes)
        turn["agent"] = " ".join(w.text for w in reply.words)
        turn["agent_end"] = reply_start + (reply.words[-1].end if reply.words else reply.duration)
        conversation.turns.append(turn)
        return max(user_end, turn["agent_end"])


def shaped_variant(lines: list[str], formant_shape: dict[str, list[float]]) -> list[str]:
    """An espeak-ng voice variant's lines with each formant in `formant_shape` moved: its frequency, height
    and width (percentages of the language's own, 100 where the variant gives none) times the factors."""
    formants = {formant: [100, 100, 100] for formant in formant_shape}
    kept = []
    for line in lines:
        fields = line.split()
        if fields[:1] == ["formant"] and fields[1] in formants:
            formants[fields[1]] = [int(value) for value in fields[2:5]]
        else:
            kept.append(line)
    return kept + [f"formant {formant} " + " ".join(str(round(value * factor)) for value, factor
                                                     in zip(formants[formant], formant_shape[formant]))
                   for formant in sorted(formant_shape)]


def _shifted(vowel_shift: dict[str, str]) -> Pronunciation:
    """A pronunciation that says each vowel in `vowel_shift` as the one it maps to, stress kept."""
    def pronounce(phonemes: list[str]) -> list[str]:
        stressed = [(phoneme[:1], phoneme[1:]) if phoneme[:1] in "'," else ("", phoneme) for phoneme in phonemes]
        return [stress + vowel_shift.get(name, name) for stress, name in stressed]
    return pronounce


def _played_faster(pcm: np.ndarray, factor: float) -> np.ndarray:
    """`pcm` played `factor` times faster, by band-limited resampling in the frequency domain: exact for
    a track that starts and ends in silence, and with no delay (sphn's resampler delays its output by
    20-35 ms depending on the rates, which would move each warp's sound differently against its marks)."""
    length = round(len(pcm) / factor)
    return (np.fft.irfft(np.fft.rfft(pcm), length) * (length / len(pcm))).astype(np.float32)


def _plain(text: str) -> str:
    """Words as the alignment spells them: no punctuation."""
    return " ".join(word.strip(",.?!") for word in text.split())


def _place(utterance: Utterance, start: float, parts: list, words: list, phonemes: list) -> None:
    parts.append((start, utterance.pcm))
    words.extend(TimedWord(w.text, round(start + w.start, 4), round(start + w.end, 4)) for w in utterance.words)
    phonemes.extend((name, round(start + at, 4)) for name, at in utterance.phonemes)


def _truncate(utterance: Utterance, end: float) -> Utterance:
    samples = int(end * SAMPLE_RATE)
    fade = min(240, samples)
    pcm = utterance.pcm[:samples].copy()
    pcm[samples - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return Utterance(pcm, SAMPLE_RATE, [w for w in utterance.words if w.end <= end + 1e-6],
                     [p for p in utterance.phonemes if p[1] < end])


def _mix(parts: list[tuple[float, np.ndarray]], total: int) -> np.ndarray:
    track = np.zeros(total, dtype=np.float32)
    for start, pcm in parts:
        offset = int(start * SAMPLE_RATE)
        end = min(total, offset + len(pcm))
        track[offset:end] += pcm[:end - offset]
    return track


def augment_user(pcm: np.ndarray, rng: random.Random) -> tuple[np.ndarray, dict]:
    """Room (a synthetic exponentially decaying impulse response), noise and level, each drawn at random."""
    settings: dict = {}
    np_rng = np.random.default_rng(rng.getrandbits(32))
    if rng.random() < 0.5:
        rt60 = rng.uniform(0.15, 0.6)
        length = int(rt60 * SAMPLE_RATE)
        decay = np.exp(-6.9 * np.arange(length) / length)
        response = np_rng.standard_normal(length).astype(np.float32) * decay.astype(np.float32)
        response[0] = 1.0
        response /= np.sqrt((response ** 2).sum())
        size = len(pcm) + length
        wet = np.fft.irfft(np.fft.rfft(pcm, size) * np.fft.rfft(response, size), size)[:len(pcm)]
        pcm = (0.6 * pcm + 0.4 * wet.astype(np.float32) * (np.abs(pcm).max() / (np.abs(wet).max() + 1e-9)))
        settings["room_rt60"] = round(rt60, 3)
    if rng.random() < 0.7:
        snr = rng.uniform(10, 40)
        noise = np_rng.standard_normal(len(pcm)).astype(np.float32)
        if rng.random() < 0.5:  # pink-ish: integrate white noise a little
            noise = np.convolve(noise, np.ones(8, dtype=np.float32) / 8, mode="same")
        speech_power = float((pcm ** 2).mean()) + 1e-9
        noise *= np.sqrt(speech_power / (10 ** (snr / 10)) / (float((noise ** 2).mean()) + 1e-12))
        pcm = pcm + noise
        settings["snr_db"] = round(snr, 1)
    gain_db = rng.uniform(-12, 3)
    pcm = pcm * 10 ** (gain_db / 20)
    settings["gain_db"] = round(gain_db, 1)
    return np.clip(pcm, -1, 1).astype(np.float32), settings
