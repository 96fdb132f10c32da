"""The conversation tasks: simple, checkable, varied. Each draws one exchange (what the user says and
what the agent answers) from a seeded generator, from the training or the held-out pool of prompts.

A held-out prompt is never heard in training, but what it asks is taught there: each fact (a sum, a
spelling, a phrase, a colour, a count) comes with several wordings, and at most one wording of each fact
is held out (a fixed fifth of all wordings). Colour questions hold out whole (thing, colour) pairs, whose
answer follows from the thing's colour, taught by the other questions about it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
SPELL_WORDS = ["cat", "dog", "sun", "hat", "red", "box", "cup", "pen", "map", "bus", "car", "egg", "fox",
               "ink", "jam", "key", "leg", "man", "net", "owl", "pig", "rat", "sea", "toy", "van", "web",
               "yak", "zip", "bed", "cow", "fig", "gum", "hen", "jet", "kit", "log", "mop", "nut", "pot", "rug",
               "sky", "tea", "bag", "bee", "ant", "arm", "bat", "bow"]
PHRASES = ["good morning", "thank you very much", "see you later", "the sun is warm", "i like green tea",
           "open the door", "it is a nice day", "the cat is asleep", "we go home now", "time for lunch",
           "the bus is late", "my pen is blue", "read a good book", "play some music", "close the window",
           "have a good night", "the dog can run", "water the plants", "turn on the light", "call me soon",
           "the tea is hot", "let us walk", "the sky is clear", "look at the moon"]
COLOUR_FACTS = [("the sky", "blue"), ("grass", "green"), ("snow", "white"), ("a banana", "yellow"),
                ("coal", "black"), ("a tomato", "red"), ("an orange", "orange"), ("the sea", "blue"),
                ("milk", "white"), ("a lemon", "yellow"), ("a strawberry", "red"), ("a leaf", "green")]
COLOURS = ["red", "green", "blue", "white", "black", "yellow", "orange"]
GREETINGS = [("hello", "hello there, how can i help"), ("hi there", "hi, nice to hear you"),
             ("good morning", "good morning to you"), ("good evening", "good evening, how are you"),
             ("hey, how are you", "i am fine, thank you"), ("hello, are you there", "yes, i am here"),
             ("hi, nice to meet you", "nice to meet you too"), ("good afternoon", "good afternoon to you")]
INTERRUPTIONS = ["stop", "wait, stop", "okay, stop please", "that is enough", "stop, thank you"]


@dataclass(frozen=True)
class Exchange:
    task: str
    user: str
    agent: str
    answer: str           # what a correct reply must contain, word for word
    interrupt: str = ""   # for the interruption task: what the user says over the agent


def _hash(key: str) -> int:
    return sum(ord(c) * (i + 1) for i, c in enumerate(key))


def _held_out(key: str) -> bool:
    """A fixed fifth of the keys is held out."""
    return _hash(key) % 5 == 0


def _pick(rng: random.Random, pool: list, held_out: bool, key: Callable = str):
    choices = [item for item in pool if _held_out(key(item)) == held_out]
    return rng.choice(choices)


def _pick_worded(rng: random.Random, wordings: list[str], pool: list, held_out: bool, key: Callable = str):
    """A (wording, fact) pair. With at most five wordings, consecutive wording indices never share a
    residue mod 5, so each fact has at most one held-out wording and is always taught in training."""
    choices = [(wording, item) for item in pool for index, wording in enumerate(wordings)
               if ((_hash(key(item)) + index) % 5 == 0) == held_out]
    return rng.choice(choices)


def greeting(rng: random.Random, held_out: bool) -> Exchange:
    suffix, (user, agent) = _pick_worded(rng, ["", " my friend", " again", " everyone"], GREETINGS, held_out,
                                         key=lambda g: g[0])
    return Exchange("greeting", user + suffix, agent, agent)


def repeat(rng: random.Random, held_out: bool) -> Exchange:
    lead, phrase = _pick_worded(rng, ["repeat after me", "please repeat", "say after me", "can you repeat"],
                                PHRASES, held_out)
    return Exchange("repeat", f"{lead}, {phrase}", phrase, phrase)


def spell(rng: random.Random, held_out: bool) -> Exchange:
    lead, word = _pick_worded(rng, ["spell the word", "how do you spell", "please spell", "can you spell"],
                              SPELL_WORDS, held_out)
    letters = " ".join(word)
    return Exchange("spell", f"{lead} {word}", letters, letters)


def arithmetic(rng: random.Random, held_out: bool) -> Exchange:
    pairs = [(a, b, op) for a in range(11) for b in range(11) for op in ("plus", "minus")
             if (a + b if op == "plus" else a - b) in range(21)]
    lead, (a, b, op) = _pick_worded(rng, ["what is", "how much is", "tell me, what is"], pairs, held_out,
                                    key=lambda p: f"{p[0]} {p[2]} {p[1]}")
    answer = NUMBERS[a + b if op == "plus" else a - b]
    return Exchange("arithmetic", f"{lead} {NUMBERS[a]} {op} {NUMBERS[b]}", answer, answer)


def counting(rng: random.Random, held_out: bool) -> Exchange:
    spans = [(start, length) for start in range(1, 12) for length in range(3, 7)]
    lead, (start, length) = _pick_worded(rng, ["count from", "please count from", "can you count from"], spans,
                                         held_out, key=lambda s: f"count {s[0]} {s[1]}")
    numbers = " ".join(NUMBERS[start:start + length])
    return Exchange("counting", f"{lead} {NUMBERS[start]} to {NUMBERS[start + length - 1]}", numbers, numbers)


def yes_no(rng: random.Random, held_out: bool) -> Exchange:
    if rng.random() < 0.5:
        questions = [(thing, colour, asked) for thing, colour in COLOUR_FACTS for asked in COLOURS]
        thing, colour, asked = _pick(rng, questions, held_out, key=lambda q: f"{q[0]} {q[2]}")
        answer = "yes" if asked == colour else "no"
        agent = f"{answer}, {thing} is {colour}"
        return Exchange("yes_no_colour", f"is {thing} {asked}", agent, answer)
    pairs = [(a, b) for a in range(11) for b in range(11) if a != b]
    lead, (a, b) = _pick_worded(rng, ["is", "tell me, is", "say, is"], pairs, held_out,
                                key=lambda p: f"bigger {p[0]} {p[1]}")
    answer = "yes" if a > b else "no"
    return Exchange("yes_no_number", f"{lead} {NUMBERS[a]} bigger than {NUMBERS[b]}", answer, answer)


def interruption(rng: random.Random, held_out: bool) -> Exchange:
    start = _pick(rng, list(range(1, 8)), held_out, key=lambda s: f"interrupt {s}")
    numbers = " ".join(NUMBERS[start:start + 10])
    return Exchange("interruption", f"count from {NUMBERS[start]} to {NUMBERS[start + 9]}", numbers, "",
                    interrupt=rng.choice(INTERRUPTIONS))


TASKS: dict[str, Callable[[random.Random, bool], Exchange]] = {
    "greeting": greeting, "repeat": repeat, "spell": spell, "arithmetic": arithmetic, "counting": counting,
    "yes_no": yes_no, "interruption": interruption,
}
# How often each task is drawn: the answer-bearing tasks most.
TASK_WEIGHTS = {"greeting": 1, "repeat": 2, "spell": 2, "arithmetic": 3, "counting": 2, "yes_no": 3,
                "interruption": 1}
