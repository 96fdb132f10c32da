"""An independent speech recognizer for intelligibility figures: pocketsphinx's bundled English model,
restricted by a JSGF grammar to the sentences a task can contain (its open-vocabulary model, or even a
free loop over the task words, is too weak a judge of synthetic speech; bound to whole sentences it
transcribes clean espeak-ng speech almost perfectly)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import sphn


def known_words() -> set[str]:
    """The words the recognizer's pronunciation dictionary holds."""
    from pocketsphinx import get_model_path

    with (Path(get_model_path()) / "en-us" / "cmudict-en-us.dict").open() as dictionary:
        return {line.split()[0].lower() for line in dictionary}


class Recognizer:
    def __init__(self, sentences: list[str]) -> None:
        from pocketsphinx import Config, Decoder, get_model_path

        model = Path(get_model_path())
        dictionary = known_words()
        words = [sentence.lower().replace(",", "").split() for sentence in sentences]
        unknown = {word for sentence in words for word in sentence} - dictionary
        if unknown:
            raise ValueError(f"not in the recognizer's dictionary: {sorted(unknown)}")
        self._folder = tempfile.TemporaryDirectory()
        grammar = Path(self._folder.name) / "tasks.gram"
        alternatives = " | ".join(sorted({" ".join(sentence) for sentence in words}))
        grammar.write_text(f"#JSGF V1.0;\ngrammar tasks;\npublic <utterance> = {alternatives} ;\n")
        config = Config(hmm=str(model / "en-us" / "en-us"), dict=str(model / "en-us" / "cmudict-en-us.dict"),
                        jsgf=str(grammar), loglevel="FATAL")
        self.decoder = Decoder(config)

    def transcribe(self, pcm: np.ndarray, sample_rate: int = 24000) -> list[str]:
        audio = sphn.resample(pcm.astype(np.float32), sample_rate, 16000)
        silence = np.zeros(4800, dtype=np.float32)  # the decoder needs a little silence around speech
        audio = np.concatenate([silence, audio, silence])
        samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(samples, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr.split() if hypothesis else []


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between word sequences."""
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, 1):
        current = [i]
        for j, guess in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != guess)))
        previous = current
    return previous[-1]
