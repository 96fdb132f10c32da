"""Turning the LM's text tokens into the monologue pieces sent to clients."""

from __future__ import annotations

from typing import Protocol

import sentencepiece


class TextPieces(Protocol):
    def piece(self, token: int) -> str: ...


class SentencePieceText:
    """Pieces as moshi's server sends them: the sentencepiece piece with '▁' turned into a space."""

    def __init__(self, processor: sentencepiece.SentencePieceProcessor) -> None:
        self.processor = processor
        self.vocab_size = processor.vocab_size()

    def piece(self, token: int) -> str:
        if not 0 <= token < self.vocab_size:
            return ""
        return self.processor.id_to_piece(token).replace("\u2581", " ")


class TokenIdText:
    """For untrained models with no tokenizer: each token shows as its id, so the stream stays visible."""

    def piece(self, token: int) -> str:
        return f" <{token}>"
