"""espeak-ng through its C library: speech plus the time of every word and phoneme.

The command-line tool gives no timing; the library's synthesis callback reports word and phoneme events
with their audio position, which is what the agent's text alignment and the codec's phoneme targets
need. One process may hold one espeak-ng engine: use a `Speaker` per process.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SSML = 0x10
_PHONEME_INPUT = 0x100  # espeakPHONEMES: text in [[ ]] is phoneme mnemonics
_PHONEME_SEPARATOR = ord("|") << 8  # espeak_TextToPhonemes puts this character between phonemes
_EVENT_WORD, _EVENT_MARK, _EVENT_PHONEME = 1, 3, 7
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds
    end: float


@dataclass
class Utterance:
    pcm: np.ndarray            # float32 at `sample_rate`
    sample_rate: int
    words: list[Word]
    phonemes: list[tuple[str, float]]  # (espeak phoneme mnemonic, start in seconds)

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


# Turns a word's phonemes (espeak-ng mnemonics, each with its stress mark: ["h", "@", "l", "'oU"]) into
# the ones to say instead.
Pronunciation = Callable[[list[str]], list[str]]


class EspeakUnavailable(RuntimeError):
    pass


class Speaker:
    """Synthesises with any espeak-ng voice ('en-us', 'en+f3', 'mb-us1' …) at a rate (words a minute)
    and pitch (0-99)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self._lib = ctypes.CDLL(name)
        except OSError as exc:
            raise EspeakUnavailable(f"espeak-ng's library is missing ({exc}); install Debian's espeak-ng") from None
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_InitializePath.argtypes = [ctypes.c_char_p]
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_ng_InitializePath(None)  # the data folder it would use: ESPEAK_DATA_PATH or its own
        found = ctypes.c_char_p()
        lib.espeak_Info(ctypes.byref(found))
        self._data = Path(found.value.decode())
        self._own_data = _data_with_own_variants(self._data)
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self._own_data).encode(),
                                                 _INITIALIZE_PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise EspeakUnavailable("espeak-ng failed to initialise")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str, int]] = []  # kind, audio ms, label, text position
        self._callback = _CALLBACK(self._on_audio)  # kept alive: the library holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        index = 0
        while events[index].type != 0:
            event = events[index]
            if event.type == _EVENT_PHONEME:
                label = event.id.string.decode("ascii", "replace")
            elif event.type == _EVENT_MARK:
                label = event.id.name.decode("ascii")
            else:
                label = ""
            self._events.append((event.type, event.audio_position, label, event.text_position))
            index += 1
        return 0

    def say(self, text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50, pitch_range: int = 50,
            pronunciation: Pronunciation | None = None) -> Utterance:
        """`text` in `voice`; with `pronunciation`, each word is said as that function re-spells its
        phonemes (the voice's own, in its phoneme table), as a speaker with another accent might."""
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_RATE, rate, 0)
        lib.espeak_SetParameter(_PITCH, pitch, 0)
        lib.espeak_SetParameter(_RANGE, pitch_range, 0)
        tokens = text.split()
        # A mark before every word: espeak-ng's own word events skip some short words ("the").
        ssml, spans = "<speak>", []  # spans: each word's characters, as espeak-ng counts them (from 1)
        for index, token in enumerate(tokens):
            ssml += f'<mark name="{index}"/>' if index == 0 else f' <mark name="{index}"/>'
            if pronunciation is None:
                spelt = escape(token)
                spans.append(range(len(ssml) + 1, len(ssml) + 1 + len(spelt)))
                ssml += spelt
            else:  # a space after "]]": a tag or a comma right after it would be read out as text
                spelt = "".join(pronunciation(self.phonemes(token)))
                spans.append(range(len(ssml) + 3, len(ssml) + 3 + len(spelt)))
                ssml += f"[[{spelt}]] {_pause(token)}"
        flags = _CHARS_UTF8 | _SSML | (0 if pronunciation is None else _PHONEME_INPUT)
        self._chunks, self._events = [], []
        encoded = (ssml + "</speak>").encode("utf-8") + b"\0"
        lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, flags, None, None)
        lib.espeak_Synchronize()
        pcm = (np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768
        return Utterance(pcm, self.sample_rate, self._words(tokens, spans, pcm), self._phonemes())

    def variant_lines(self, name: str) -> list[str]:
        """The lines of espeak-ng's voice variant `name` (its file under voices/!v)."""
        return (self._data / "voices" / "!v" / name).read_text(encoding="latin-1").splitlines()

    def add_variant(self, name: str, lines: list[str]) -> None:
        """A voice variant in espeak-ng's format, which voices can then name (`en-us+NAME`)."""
        (self._own_data / "voices" / "!v" / name).write_text("\n".join(lines) + "\n", encoding="latin-1")

    def phonemes(self, word: str) -> list[str]:
        """`word`'s phonemes in the current voice, each with its stress mark if any."""
        text = ctypes.c_char_p(word.strip(",.?!").encode("utf-8"))
        spelt = self._lib.espeak_TextToPhonemes(ctypes.byref(text), _CHARS_UTF8, _PHONEME_SEPARATOR)
        return [phoneme for phoneme in spelt.decode("ascii").split("|") if phoneme]

    def _words(self, tokens: list[str], spans: list[range], pcm: np.ndarray) -> list[Word]:
        """Marks give each word's start; a word ends where its sound does (before the pause that may
        follow it), at the latest where the next word starts.

        Events are matched to words by the character they report (any of the word's own: spelt in
        phonemes, a word is reported after its stress mark), not by the mark's name: where an accent
        drops a word's first sound (the h of "hello" in West Midlands English), espeak-ng loses that word's
        mark and reports each later mark under the name of the one before. Such a word still has its word
        event, which stands in for the missing mark. A short word voiced with the next one ("the light")
        has neither in its characters: it starts where the next word does, as its mark would say."""
        heard: dict[int, float] = {}
        for kind in (_EVENT_WORD, _EVENT_MARK):  # marks last: they win where both are reported
            heard.update({position: audio_ms / 1000 for event, audio_ms, _, position in self._events
                          if event == kind})
        starts: list[tuple[str, float]] = []
        for token, span in reversed(list(zip(tokens, spans))):
            reported = [position for position in heard if position in span]
            start = heard[min(reported)] if reported else (starts[0][1] if starts else None)
            if start is not None:
                starts.insert(0, (token.strip(",.?!"), start))
        starts = _share_merged_starts(starts)
        rate = self.sample_rate
        loud = np.abs(pcm) > 0.02 * (np.abs(pcm).max() if len(pcm) else 1.0)
        words = []
        for index, (word, start) in enumerate(starts):
            limit = starts[index + 1][1] if index + 1 < len(starts) else len(pcm) / rate
            sounding = np.flatnonzero(loud[int(start * rate):int(limit * rate)])
            end = start + (sounding[-1] + 1) / rate if len(sounding) else limit
            words.append(Word(word, start, max(start, end)))
        return words

    def _phonemes(self) -> list[tuple[str, float]]:
        return [(name, audio_ms / 1000) for kind, audio_ms, name, _ in self._events if kind == _EVENT_PHONEME]


@functools.cache
def _data_with_own_variants(data: Path) -> Path:
    """A folder that espeak-ng reads as its data folder `data` (a link to each of its entries), except that
    the folder of voice variants is its own, so that variants can be added. One per process, however many
    Speakers it makes (each `generate` call makes one). Removed when the process exits normally; forked
    children, which end with `os._exit`, leave it to their parent."""
    root = Path(tempfile.mkdtemp(prefix="antiphon-espeak-"))
    atexit.register(shutil.rmtree, root, True)
    own = root / "espeak-ng-data"
    for folder in (Path("."), Path("voices"), Path("voices", "!v")):
        (own / folder).mkdir()
        for entry in (data / folder).iterdir():
            if entry.name not in ("voices", "!v"):  # the folders made here
                (own / folder / entry.name).symlink_to(entry)
    return own


def _pause(token: str) -> str:
    """The punctuation after a word spelt in phonemes, standing apart so that it is heard as a pause."""
    return token[-1] + " " if token[-1] in ",.?!" else ""


def _share_merged_starts(starts: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """espeak-ng voices a short unstressed word with its neighbour ("on the"), and marks it where the
    next word starts. Give such a word its share, by letters, of the interval it was voiced in."""
    fixed = list(starts)
    for index in range(1, len(fixed) - 1):
        word, start = fixed[index]
        following = fixed[index + 1][1]
        if following - start < 0.01:
            previous_word, previous_start = fixed[index - 1]
            share = len(previous_word) / (len(previous_word) + len(word))
            fixed[index] = (word, round(previous_start + (start - previous_start) * share, 4))
    return fixed
