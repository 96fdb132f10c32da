"""The engine: one model on one device, a fixed batch of slots, one batched step per frame.

Only the engine thread calls into this module. Each step runs moshi's streaming modules on the whole
batch: Mimi encodes every slot's 1920-sample frame, LMGen steps the temporal and depth transformers, and
Mimi decodes the agent's codebooks. A slot that has no frame this step is masked with `set_exec_mask`, so
its streaming state does not move; a slot that starts a session is reset alone with
`reset_streaming(mask)`. On CUDA the step is two CUDA graphs (`frame_graphs.py`): Mimi's encoding, then
the LM step with the decoding; without `frame_graphs`, moshi's modules capture themselves in CUDA graphs
piece by piece, with Python between them. Either way the step's outputs come back to the host in one copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from moshi.models.lm import LMGen

from ..models.loader import LoadedModel
from .compiled import CompiledPieces
from .frame_graphs import graphed
from .params import SamplingParams
from .sampling import SlotSampler
from .streaming_state import StatePinning


@dataclass
class StepResult:
    """What one step produced, on the host. Rows of slots that did not produce are meaningless."""

    pcm: np.ndarray        # [slots, frame_size] float32, the agent's audio
    text: np.ndarray       # [slots] int64, the monologue's text token
    audio: np.ndarray      # [slots, dep_q] int64, the agent's audio tokens
    produced: np.ndarray   # [slots] bool: stepped and past LMGen's delay warm-up


class Engine:
    def __init__(self, model: LoadedModel, slots: int, frame_graphs: bool = True,
                 compile_backend: str | Callable[..., Any] | None = None) -> None:
        """`frame_graphs`: on CUDA, capture the step as two graphs rather than run moshi's graphed pieces.
        `compile_backend` (`inductor` for `--compile`): torch.compile the step's pieces with it; on CUDA
        this implies frame graphs, captured once compiling is done."""
        if slots < 1:
            raise ValueError("an engine needs at least one slot")
        self.model = model
        self.slots = slots
        self.mimi = model.mimi
        self.device = next(model.lm.parameters()).device
        self.frame_size = int(self.mimi.frame_size)
        self.sample_rate = int(self.mimi.sample_rate)
        self.sampler = SlotSampler(slots, self.device)
        self._install_audio_sampling()
        # before LMGen binds the text hook and, on entering streaming, `forward_text`
        self._compiled = (CompiledPieces(model, [(self.sampler, "force_text")], compile_backend)
                          if compile_backend else None)
        self.lm_gen = LMGen(model.lm, use_sampling=False, support_out_of_sync=True,
                            on_text_logits_hook=self.sampler.force_text)
        self.padding_tokens = {model.lm.existing_text_padding_id, model.lm.end_of_text_padding_id}
        # moshi's server drops the encoder state after a session's first frame, so that the next one
        # starts from fresh left padding; slots marked here get the same treatment.
        self._fresh = np.zeros(slots, dtype=bool)
        self._streams = [self.mimi.streaming(slots), self.lm_gen.streaming(slots)]
        use_graphs = (frame_graphs or self._compiled is not None) and self.device.type == "cuda"
        # A compiled piece compiles again on its second call (its step counter turns symbolic); capturing
        # only after that keeps compilation out of the graphs.
        self._eager_steps = 3 if self._compiled is not None else 1
        # LMGen's own state and its LM's modules are separate streaming trees (LMGen reaches the LM's
        # through callbacks), so the LM is named too.
        self.streaming_roots = [self.mimi, self.lm_gen, model.lm]
        pinning = StatePinning(self.streaming_roots)
        self._encode = graphed(self._encode_frames, pinning, use_graphs, self._eager_steps)
        self._generate = graphed(self._generate_frames, pinning, use_graphs, self._eager_steps)

    def _install_audio_sampling(self) -> None:
        """Route the depth transformer's per-codebook logits through the per-slot sampler.

        LMGen samples audio inside `depformer_step` with batch-wide settings; wrapping the model's
        `forward_depformer` (which that step calls for each codebook) is the one place where per-slot
        sampling can enter without changing moshi's step."""
        lm = self.model.lm
        forward_depformer = lm.forward_depformer
        sampler = self.sampler

        def sampled_forward_depformer(codebook: int, sequence: torch.Tensor,
                                      transformer_out: torch.Tensor) -> torch.Tensor:
            return sampler.force_audio(forward_depformer(codebook, sequence, transformer_out), codebook)

        lm.forward_depformer = sampled_forward_depformer  # type: ignore[method-assign]

    @torch.no_grad()
    def step(self, pcm: np.ndarray, stepping: np.ndarray,
             joining: dict[int, SamplingParams] | None = None) -> StepResult:
        """Advance the slots in `stepping` by one frame of `pcm` ([slots, frame_size] float32).

        Slots in `joining` start a new session first: their state is reset and their sampling set."""
        if joining:
            self._join(joining)
        stepping = np.asarray(stepping, dtype=bool)
        exec_mask = torch.from_numpy(stepping).to(self.device)
        frames = torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32)).to(self.device)
        codes = self._encode(frames, exec_mask)
        first = self._fresh & stepping
        if first.any():
            self.mimi.reset_streaming(torch.from_numpy(first).to(self.device))
            self._fresh &= ~stepping
        # One transfer, one wait for the device: [pcm | text, audio tokens | produced] per slot.
        packed = self._generate(codes, exec_mask).cpu().numpy()
        tokens = packed[:, self.frame_size:-1].astype(np.int64)
        return StepResult(pcm=packed[:, :self.frame_size], text=tokens[:, 0], audio=tokens[:, 1:],
                          produced=packed[:, -1] > 0)

    def _encode_frames(self, frames: torch.Tensor, exec_mask: torch.Tensor) -> torch.Tensor:
        self.mimi.set_exec_mask(exec_mask)
        return self.mimi.encode(frames[:, None, :])

    def _generate_frames(self, codes: torch.Tensor, exec_mask: torch.Tensor) -> torch.Tensor:
        """The LM step and the decoding of what it produced, packed into one float32 row per slot (token
        ids are small integers, exact in float32)."""
        self.lm_gen.set_exec_mask(exec_mask)
        tokens = self.lm_gen.step(codes)
        assert tokens is not None  # support_out_of_sync: masked rows come back as negative ids
        self.sampler.advance(exec_mask)
        audio_tokens = tokens[:, 1:, :]
        produced = exec_mask & (audio_tokens[:, :, 0] >= 0).all(dim=1)
        self.mimi.set_exec_mask(produced)
        pcm = self.mimi.decode(audio_tokens.clamp(min=0))
        return torch.cat([pcm[:, 0, :].float(), tokens[:, :, 0].float(), produced[:, None].float()], dim=1)

    def _join(self, joining: dict[int, SamplingParams]) -> None:
        mask = torch.zeros(self.slots, dtype=torch.bool)
        for slot, params in joining.items():
            mask[slot] = True
            self.sampler.assign(slot, params)
        self._fresh |= mask.numpy()
        mask = mask.to(self.device)
        self.mimi.reset_streaming(mask)
        self.lm_gen.reset_streaming(mask)

    def warmup(self) -> None:
        """Run a few silent frames through every slot, so that pieces are compiled and CUDA graphs
        captured before the first session arrives (each session resets its slot when it joins)."""
        steps = self._eager_steps + 2
        silence = np.zeros((self.slots, self.frame_size), dtype=np.float32)
        everyone = np.ones(self.slots, dtype=bool)
        greedy = SamplingParams(text_temperature=0.0, audio_temperature=0.0)
        self.step(silence, everyone, joining={slot: greedy for slot in range(self.slots)})
        for _ in range(steps - 1):
            self.step(silence, everyone)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def close(self) -> None:
        """Leave streaming and give the model back as it was, so that another engine (or moshi's own
        modules) can step it."""
        for stream in self._streams:
            stream.close()
        self._streams = []
        if self._compiled is not None:
            self._compiled.restore()
        vars(self.model.lm).pop("forward_depformer", None)
        self._encode = self._generate = _closed  # the captured graphs hold device memory until dropped

    def text_piece(self, token: int) -> str | None:
        """The monologue piece of a text token, or None for padding."""
        if token in self.padding_tokens:
            return None
        return self.model.text.piece(token) or None


def _closed(*_: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("the engine is closed")
