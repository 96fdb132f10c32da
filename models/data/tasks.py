"""The conversation tasks: simple, checkable, varied. Each draws one exchange (what the user says and
what the agent answers) from a seeded generator, from the training or the held-out pool of instances.

Held-out instances never occur in training: each task splits its instance space by a fixed rule.
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


def _held_out(key: str) -> bool:
    """A fixed fifth of each task's instances is held out."""
    return sum(ord(c) * (i + 1) for i, c in enumerate(key)) % 5 == 0


def _pick(rng: random.Random, pool: list, held_out: bool, key: Callable = str):
    choices = [item for item in pool if _held_out(key(item)) == held_out]
    return rng.choice(choices)


def greeting(rng: random.Random, held_out: bool) -> Exchange:
    user, agent = _pick(rng, GREETINGS, held_out, key=lambda g: g[0])
    return Exchange("greeting", user, agent, agent)


def repeat(rng: random.Random, held_out: bool) -> Exchange:
    phrase = _pick(rng, PHRASES, held_out)
    lead = rng.choice(["repeat after me", "please repeat", "say after me", "can you repeat"])
    return Exchange("repeat", f"{lead}, {phrase}", phrase, phrase)


def spell(rng: random.Random, held_out: bool) -> Exchange:
    word = _pick(rng, SPELL_WORDS, held_out)
    lead = rng.choice(["spell the word", "how do you spell", "please spell", "can you spell"])
    letters = " ".join(word)
    return Exchange("spell", f"{lead} {word}", letters, letters)


def arithmetic(rng: random.Random, held_out: bool) -> Exchange:
    pairs = [(a, b, op) for a in range(11) for b in range(11) for op in ("plus", "minus")
             if (a + b if op == "plus" else a - b) in range(21)]
    a, b, op = _pick(rng, pairs, held_out, key=lambda p: f"{p[0]} {p[2]} {p[1]}")
    answer = NUMBERS[a + b if op == "plus" else a - b]
    lead = rng.choice(["what is", "how much is", "tell me, what is"])
    return Exchange("arithmetic", f"{lead} {NUMBERS[a]} {op} {NUMBERS[b]}", answer, answer)


def counting(rng: random.Random, held_out: bool) -> Exchange:
    spans = [(start, length) for start in range(1, 12) for length in range(3, 7)]
    start, length = _pick(rng, spans, held_out, key=lambda s: f"count {s[0]} {s[1]}")
    numbers = " ".join(NUMBERS[start:start + length])
    return Exchange("counting", f"count from {NUMBERS[start]} to {NUMBERS[start + length - 1]}", numbers, numbers)


def yes_no(rng: random.Random, held_out: bool) -> Exchange:
    if rng.random() < 0.5:
        thing, colour = _pick(rng, COLOUR_FACTS, held_out, key=lambda f: f[0])
        asked = colour if rng.random() < 0.5 else rng.choice([c for c in COLOURS if c != colour])
        answer = "yes" if asked == colour else "no"
        agent = f"{answer}, {thing} is {colour}"
        return Exchange("yes_no_colour", f"is {thing} {asked}", agent, answer)
    pairs = [(a, b) for a in range(11) for b in range(11) if a != b]
    a, b = _pick(rng, pairs, held_out, key=lambda p: f"bigger {p[0]} {p[1]}")
    answer = "yes" if a > b else "no"
    return Exchange("yes_no_number", f"is {NUMBERS[a]} bigger than {NUMBERS[b]}", answer, answer)


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
