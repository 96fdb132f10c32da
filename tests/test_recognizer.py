"""The intelligibility judge recognises clean espeak-ng speech in the agent's voice over task sentences."""

from __future__ import annotations

import pytest

from antiphon.models.eval.recognizer import word_errors
from speech import espeak


def test_word_errors():
    assert word_errors("a b c".split(), "a b c".split()) == 0
    assert word_errors("a b c".split(), "a c".split()) == 1
    assert word_errors("a b".split(), "x a b y".split()) == 2


def test_grammar_bound_recognizer_on_clean_speech():
    pytest.importorskip("pocketsphinx")
    from antiphon.models.eval.recognizer import Recognizer

    sentences = ["what is three plus four", "seven", "count from two to five", "yes the sky is blue"]
    distractors = ["what is four plus three", "eleven", "count from two to nine", "no the sky is blue", "seventeen"]
    recognizer = Recognizer(sentences + distractors)
    errors = words = 0
    for sentence in sentences:
        reference = sentence.split()
        errors += word_errors(reference, recognizer.transcribe(espeak(sentence, "en-us+f3", speed=165)))
        words += len(reference)
    assert errors / words <= 0.1
