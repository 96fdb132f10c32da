"""`antiphon train lm`: train the small multi-stream LM on the synthetic conversations.

moshi's own LMModel (temporal transformer over the text stream and 16 audio codebooks with Moshi's delays,
depth transformer over the agent's 8 codebooks) learns to predict the agent's monologue and speech from
the whole conversation so far. The first call of a run trains the tokenizer and tokenizes the dataset
with the codec (`RUN/tokens-*.npz`); later calls reuse them. Runs until `--minutes` or `--steps`,
checkpoints to `RUN/train-state.pt` (resume with `--resume`), logs to `RUN/log.jsonl`, and exports a
complete model folder in Kyutai's layout to `RUN/model/`.

`--no-text` trains the same architecture with its text stream held at padding: the audio-only ablation.

Listening: the LM's targets say what the agent says, and only a reply's few words depend on what the user
said, a weak signal for learning to hear. A linear head on the temporal transformer's output, used in
training only (not exported, so the served model is moshi's LMModel as is), transcribes the user's words
a frame after each ends (`lm_data.align_heard_text`), with weight `--listening-weight`.

What the model reads, not what it learns to predict, is perturbed in training: some of its own audio
tokens replaced by random ones (`--agent-noise`) and, with `--user-mask`, short stretches of the user's
audio hidden. `--dropout` drops parts of the temporal transformer's layer outputs in training.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import sentencepiece
import torch
from moshi.models import loaders
from moshi.utils.compile import no_compile
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from ..configs import ANTIPHON_SMALL_LM
from ..loader import lm_kwargs_of, load_codec
from .captured_step import CapturedStep
from .lm_data import (AGENT_AUDIO_ROWS, HEARD_ROW, PADDING, STREAMS, USER_AUDIO_ROWS, TokenSet, is_word, reply_starts,
                      tokenize_split, train_tokenizer, word_onsets)
from .lm_probe import free_running_accuracies
from .schedule import cooldown_scale

PADDING_TEXT_WEIGHT = 0.5  # padding dominates the monologue; words carry the answer
LOG_EVERY = 50  # steps; each log entry holds the mean figures since the last
EVALUATE_EVERY = 1000  # steps; a held-out evaluation (its free-running decoding most) takes ~8 s on an H200
FREE_RUNNING_CONVERSATIONS = 32  # held-out conversations the model decodes on its own at each evaluation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset folder from `antiphon data`")
    parser.add_argument("--codec", type=Path, required=True,
                        help="folder with the codec's mimi.safetensors and mimi_config.json")
    parser.add_argument("--out", type=Path, required=True, help="run folder: tokens, checkpoints, log, export")
    parser.add_argument("--tokens", type=Path,
                        help="folder of the tokenizer and token files, when another run made them (default: --out)")
    parser.add_argument("--resume", type=Path, help="a train-state.pt to continue from")
    parser.add_argument("--init", type=Path,
                        help="LM weights to start from with a fresh optimizer: an earlier run's exported "
                             "model.safetensors (or one joined from a transfer)")
    parser.add_argument("--no-text", action="store_true", help="audio-only ablation: no monologue")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-frames", type=int, default=ANTIPHON_SMALL_LM["context"])
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=200, help="steps of linear learning-rate warm-up")
    parser.add_argument("--minutes", type=float, default=8.0, help="stop after this much training time")
    parser.add_argument("--steps", type=int, default=10**9, help="stop after this many steps in all")
    parser.add_argument("--cooldown", type=float, default=0.3,
                        help="fraction of --minutes at the end over which the learning rate falls to 5%%")
    parser.add_argument("--vocab", type=int, default=ANTIPHON_SMALL_LM["text_card"],
                        help="most sentencepiece pieces (the LM's text_card)")
    parser.add_argument("--agent-noise", type=float, default=0.1,
                        help="share of the agent's audio tokens the model reads replaced by random ones")
    parser.add_argument("--user-mask", type=float, default=0.0,
                        help="share of the user's audio frames the model reads hidden, in spans of 80-240 ms "
                             "(a regulariser for hearing unseen voices; 0: none)")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout on the temporal transformer's attention and feed-forward outputs, in "
                             "training only (a regulariser for unseen voices and wordings; 0: none)")
    parser.add_argument("--listening-weight", type=float, default=0.5,
                        help="weight of the training-only head that transcribes the user's words (0: none)")
    parser.add_argument("--compile", nargs="?", const="default", choices=["default", "reduce-overhead"],
                        help="train through torch.compile in this mode (fused kernels; reduce-overhead also "
                             "replays them as CUDA graphs; batches padded to --max-frames, one shape): for a "
                             "GPU, where the eager step is bound by the host")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="replay each training step (forward, backward, clipping, AdamW) from one CUDA graph "
                             "(batches padded to --max-frames, one shape): for a GPU, where the eager step is "
                             "bound by the host launching its kernels")
    parser.add_argument("--seed", type=int, default=0)


def prepare(args: argparse.Namespace, device: torch.device) -> None:
    """Tokenizer and token files, once per token folder."""
    tokens = token_folder(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if (tokens / "tokens-heldout.npz").is_file():
        return
    tokens.mkdir(parents=True, exist_ok=True)
    if (tokens / "tokenizer.model").is_file():  # an earlier run's, so that weights started from it read the same ids
        tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(tokens / "tokenizer.model"))
    else:
        tokenizer = train_tokenizer(args.data, tokens / "tokenizer", args.vocab)
    mimi = load_codec(args.codec, device).eval()
    for split in ("train", "heldout"):
        tokenize_split(mimi, tokenizer, args.data, split, tokens / f"tokens-{split}.npz", device)


def check_step_options(args: argparse.Namespace) -> None:
    if args.cuda_graph and (torch.device(args.device).type != "cuda" or args.compile):
        raise ValueError("--cuda-graph captures the eager step on a CUDA device: give --device cuda and "
                         "leave out --compile (whose reduce-overhead mode graphs the compiled step)")


def token_folder(args: argparse.Namespace) -> Path:
    return args.tokens or args.out


class LMTrainer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device(args.device)
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        self.train_set = TokenSet(token_folder(args), "tokens-train*.npz")  # more may arrive while training
        self.heldout_set = TokenSet(token_folder(args), "tokens-heldout.npz")
        if self.train_set.conversations[0].shape[0] != HEARD_ROW + 1:
            raise ValueError(f"the token files in {token_folder(args)} predate the current layout "
                             f"({HEARD_ROW + 1} rows): remove them to tokenize again")
        check_step_options(args)
        self.config = dict(ANTIPHON_SMALL_LM)
        self.lm = loaders.get_moshi_lm(None, lm_kwargs=lm_kwargs_of(self.config), device=self.device,
                                       dtype=torch.float32)
        if args.dropout > 0:
            add_residual_dropout(self.lm.transformer, args.dropout)
        # what training steps run: the LM itself, or compiled (evaluation and export use the LM itself)
        self.stepped_lm: nn.Module = torch.compile(self.lm, mode=args.compile) if args.compile else self.lm
        self.listening = nn.Linear(self.lm.dim, self.lm.text_card).to(self.device)
        self._transformer_out: torch.Tensor | None = None
        self.lm.text_linear.register_forward_pre_hook(self._keep_transformer_out)
        named = [*self.lm.named_parameters(), *self.listening.named_parameters(prefix="listening")]
        decay = [p for n, p in named if p.dim() >= 2 and "emb" not in n]
        rest = [p for n, p in named if not (p.dim() >= 2 and "emb" not in n)]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                            {"params": rest, "weight_decay": 0.0}],
                                           lr=args.lr, betas=(0.9, 0.95), fused=self.device.type == "cuda")
        self.captured_step = CapturedStep(self.optimize) if args.cuda_graph else None
        self.fixed_length = bool(args.compile) or args.cuda_graph  # one batch shape
        self.step = 0
        if args.init and args.resume:
            raise ValueError("--init starts a run from weights, --resume continues one: give one of them")
        if args.init:
            self.lm.load_state_dict({name: tensor.float() for name, tensor in load_file(str(args.init)).items()})
        if args.resume:
            state = torch.load(args.resume, map_location="cpu", weights_only=False)
            self.lm.load_state_dict(state["lm"])
            self.listening.load_state_dict(state["listening"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step = state["step"]
            self.rng = np.random.default_rng(args.seed + self.step)
        # A captured step reads the learning rate from the device, where the schedule writes it each step (a
        # number would be recorded as a constant), and AdamW then keeps its step counts there; whichever
        # kind of run saved the state resumed from.
        for group in self.optimizer.param_groups:
            learning_rate = float(group["lr"])
            group["lr"] = torch.tensor(learning_rate, device=self.device) if args.cuda_graph else learning_rate
            group["capturable"] = args.cuda_graph

    def _keep_transformer_out(self, _module: nn.Module, inputs: tuple[torch.Tensor]) -> None:
        self._transformer_out = inputs[0]

    def draw_batch(self) -> list[int]:
        """A training batch's conversations, drawn at random."""
        return self.rng.integers(0, len(self.train_set), self.args.batch).tolist()

    def codes(self, token_set: TokenSet, indices: list[int], fixed_length: bool = False) -> torch.Tensor:
        codes = token_set.batch(indices, self.args.max_frames, self.lm.zero_token_id, fixed_length)
        if self.args.no_text:
            codes[:, 0] = torch.where(codes[:, 0] == self.lm.zero_token_id, codes[:, 0], PADDING)
        if self.device.type == "cuda":  # from pinned memory the copy does not wait for the GPU to be idle
            return codes.pin_memory().to(self.device, non_blocking=True)
        return codes

    def losses(self, codes: torch.Tensor, inputs: torch.Tensor | None = None,
               model: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """Losses against `codes`, `model` (default: the LM) reading `inputs` (default: the same codes).

        Every figure is a masked mean over dense tensors, so a training step never waits for the GPU to
        say how many positions a mask holds (boolean indexing would, once per loss)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            output = (self.lm if model is None else model)((codes if inputs is None else inputs)[:, :STREAMS])
            heard_logits = self.listening(self._transformer_out) if self.args.listening_weight > 0 else None
        text_target = codes[:, :1]
        per_token = _cross_entropy(output.text_logits, text_target, output.text_mask)
        words = is_word(text_target) & output.text_mask
        weights = torch.where(words, 1.0, PADDING_TEXT_WEIGHT) * output.text_mask
        figures = {"text": (per_token * weights).sum() / weights.sum()}
        per_audio_token = _cross_entropy(output.logits, codes[:, 1:1 + self.lm.dep_q], output.mask)
        per_codebook = _masked_mean(per_audio_token, output.mask, dims=(0, 2))
        figures["semantic"] = per_codebook[0]
        figures["acoustic"] = per_codebook[1:].mean()
        heard = codes[:, HEARD_ROW]
        listened = is_word(heard) & (heard != self.lm.zero_token_id)  # not past the conversation's end
        if heard_logits is not None:
            figures["listening"] = _masked_mean(_cross_entropy(heard_logits, heard, listened), listened)
            figures["listening_accuracy"] = _masked_mean(_hits(heard_logits, heard), listened)
        if not self.args.no_text:
            text_correct = _hits(output.text_logits, text_target)
            figures["word_accuracy"] = _masked_mean(text_correct, words)
            # the first token of a word after silence: mostly the first word of a reply, where the
            # answer is decided (the tokens after it mostly follow from it)
            figures["onset_accuracy"] = _masked_mean(text_correct, word_onsets(text_target) & output.text_mask)
            figures["reply_start_accuracy"] = _masked_mean(text_correct, reply_starts(text_target) & output.text_mask)
        return figures

    def train_step(self, learning_rate_scale: float) -> dict[str, torch.Tensor]:
        """One optimizer step; the figures stay on the device, so that the host queues the next step
        while this one runs."""
        self.lm.train()
        self.set_learning_rate(self.args.lr * learning_rate_scale * min(1.0, (self.step + 1) / self.args.warmup))
        codes = self.codes(self.train_set, self.draw_batch(), fixed_length=self.fixed_length)
        figures = self.captured_step(codes) if self.captured_step else self.optimize(codes)
        self.step += 1
        return figures

    def set_learning_rate(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(value)  # where the captured step reads it
            else:
                group["lr"] = value

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def optimize(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Forward, backward, clipping and the optimizer's update on a batch on the device: device work
        alone, with no wait for the device, so that it can be captured as one CUDA graph."""
        inputs = corrupt_agent_audio(mask_user_audio(codes, self.args.user_mask), self.args.agent_noise, self.lm.card)
        figures = self.losses(codes, inputs, self.stepped_lm)
        # The ablation learns its text stream too, all padding, so that at inference it feeds itself the
        # padding it was trained on.
        total = figures["semantic"] + figures["acoustic"] + figures["text"]
        if "listening" in figures:
            total = total + self.args.listening_weight * figures["listening"]
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_([*self.lm.parameters(), *self.listening.parameters()], 1.0)
        self.optimizer.step()
        return {name: value.detach() for name, value in figures.items()}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Teacher-forced losses and monologue word accuracy on the held-out split."""
        self.lm.eval()
        sums: dict[str, float] = {}
        batches = [list(range(i, min(i + self.args.batch, len(self.heldout_set))))
                   for i in range(0, len(self.heldout_set), self.args.batch)]
        for indices in batches:
            for name, value in self.losses(self.codes(self.heldout_set, indices)).items():
                sums[name] = sums.get(name, 0.0) + value.item() / len(batches)
        if not self.args.no_text:
            sums.update(free_running_accuracies(self.lm, self.heldout_set, FREE_RUNNING_CONVERSATIONS))
        return {f"heldout_{name}": round(value, 4) for name, value in sums.items()}

    def save(self) -> None:
        torch.save({"lm": self.lm.state_dict(), "listening": self.listening.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "step": self.step}, self.args.out / "train-state.pt")
        export_model(self.lm, self.config, self.args.codec, token_folder(self.args) / "tokenizer.model",
                     self.args.out / "model")


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The cross-entropy at every position of `logits` (..., card), finite everywhere but meaningless where
    `mask` is off, where moshi's logits are NaN and `target` may not be a token."""
    logits = torch.where(mask.unsqueeze(-1), logits.float(), 0.0)
    target = torch.where(mask, target, 0)
    per_token = nn.functional.cross_entropy(logits.flatten(0, -2), target.flatten(), reduction="none")
    return per_token.view(target.shape)


@torch.no_grad()
def _hits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 where the argmax of `logits` (..., card) is `target`, else 0 (meaningless where either is padding)."""
    return (logits.argmax(-1) == target).float()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor, dims: tuple[int, ...] | None = None) -> torch.Tensor:
    """The mean of `values` where `mask` holds (0 where it never does), over `dims` (default: all)."""
    dims = dims or tuple(range(values.dim()))
    return (values * mask).sum(dims) / mask.sum(dims).clamp(min=1)


def add_residual_dropout(transformer: nn.Module, rate: float) -> None:
    """Dropout on each layer's attention and feed-forward outputs before they join the residual stream,
    in training mode only. moshi's transformer has none of its own; hooks add it without changing the
    model, which exports as it is.

    Training batches reach 0.99 of the user's words heard (the listening head) and 0.99 of the monologue's
    words, held-out conversations 0.95 and 0.94 (run 8): the model fits the voices and wordings it trains
    on. Dropout keeps any one unit from carrying a detail of them alone; at 0.2 (run 9,
    `models/train/runs/README.md`) it left that gap as it was."""
    def drop(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(output, rate, module.training)

    for layer in transformer.layers:
        for branch in (layer.self_attn, layer.gating):
            branch.register_forward_hook(drop)


def corrupt_agent_audio(codes: torch.Tensor, rate: float, card: int) -> torch.Tensor:
    """The codes with a `rate` share of the agent's audio tokens (rows 1-8) replaced by random ones.

    Served, the model reads back audio tokens it sampled itself, which differ from any recording; run 1,
    trained on recordings only, answered 62 % of held-out reply onsets right when fed the recorded
    agent audio and 19 % when fed its own (its text forced to the recording in both). Reading slightly
    wrong audio in training teaches it not to lean on every token of its own voice. Targets stay clean."""
    if rate <= 0:
        return codes
    agent = codes[:, AGENT_AUDIO_ROWS]
    noisy = torch.rand(agent.shape, device=codes.device) < rate
    noisy &= agent != -1  # padding stays padding
    corrupted = codes.clone()
    corrupted[:, AGENT_AUDIO_ROWS] = torch.where(noisy, torch.randint_like(agent, card), agent)
    return corrupted


def mask_user_audio(codes: torch.Tensor, rate: float) -> torch.Tensor:
    """The codes with about a `rate` share of the user's audio frames (rows 9-16) hidden, in spans of 1-3
    frames (80-240 ms): each hidden frame's 8 codebooks become the zero token, which moshi's embeddings
    read as nothing at all.

    On training voices the model's monologue reaches 0.99 word accuracy and on unseen ones 0.93: it leans
    on details of the voices it was trained on. Hiding short stretches of what it hears, as SpecAugment's
    time masks do for speech recognisers, makes it take each word from what is left and from context.
    Targets stay clean."""
    if rate <= 0:
        return codes
    user = codes[:, USER_AUDIO_ROWS]
    batch, _, frames = user.shape
    spans = 3
    starts = torch.rand(batch, frames, device=codes.device) < rate / 2  # spans of 2 frames on average
    lengths = torch.randint(1, spans + 1, (batch, frames), device=codes.device)
    hidden = starts.clone()
    for shift in range(1, spans):
        hidden[:, shift:] |= starts[:, :-shift] & (lengths[:, :-shift] > shift)
    masked = codes.clone()
    masked[:, USER_AUDIO_ROWS] = torch.where(hidden[:, None], torch.full_like(user, -1), user)
    return masked


def export_model(lm: nn.Module, config: dict, codec: Path, tokenizer: Path, folder: Path) -> None:
    """A model folder in Kyutai's layout: LM and codec weights in float16 (half the size; the loader
    casts them to the serving dtype), the tokenizer, and config.json naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(_half(lm.state_dict()), str(folder / "model.safetensors"))
    save_file(_half(load_file(str(codec / "mimi.safetensors"))), str(folder / "mimi.safetensors"))
    shutil.copyfile(codec / "mimi_config.json", folder / "mimi_config.json")
    shutil.copyfile(tokenizer, folder / "tokenizer.model")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: (value.detach().to(torch.float16) if value.is_floating_point() else value).contiguous().cpu()
            for key, value in state.items()}


def run(args: argparse.Namespace) -> None:
    # moshi compiles a few helpers (norms, gating) with torch.compile; some torch releases' compiled
    # backward of them returns gradients of the wrong shape, so training runs them eagerly.
    with no_compile():
        _train(args)


def _train(args: argparse.Namespace) -> None:
    check_step_options(args)  # before tokenizing, which can take minutes
    prepare(args, torch.device(args.device))
    trainer = LMTrainer(args)
    budget = args.minutes * 60
    deadline = time.monotonic() + budget
    sums: dict[str, torch.Tensor] = {}  # since the last log entry, over `counted` steps
    counted = 0
    with open(args.out / "log.jsonl", "a") as log, \
            tqdm(initial=trainer.step, total=min(args.steps, trainer.step + 10**6), unit="step",
                 desc="lm", dynamic_ncols=True) as bar:
        while trainer.step < args.steps and time.monotonic() < deadline:
            scale = cooldown_scale(deadline - time.monotonic(), budget * args.cooldown, cosine=True)
            for name, value in trainer.train_step(scale).items():
                sums[name] = sums[name] + value if name in sums else value
            counted += 1
            bar.update(1)
            if trainer.step % LOG_EVERY == 0:
                entry = {"step": trainer.step, "time": time.time(), "lr": trainer.learning_rate(),
                         **{name: round(value.item() / counted, 4) for name, value in sums.items()}}
                sums.clear()
                counted = 0
                if trainer.step % EVALUATE_EVERY == 0:
                    started = time.monotonic()
                    entry.update(trainer.evaluate())
                    entry["evaluate_seconds"] = round(time.monotonic() - started, 1)
                log.write(json.dumps(entry) + "\n")
                log.flush()
                bar.set_postfix(sem=entry["semantic"], words=entry.get("word_accuracy", "-"))
            if trainer.step % 2000 == 0:
                trainer.save()
            if trainer.step % 200 == 0:
                started = time.monotonic()
                if trainer.train_set.refresh():  # the time it takes is training time lost: logged
                    log.write(json.dumps({"step": trainer.step, "conversations": len(trainer.train_set),
                                          "load_seconds": round(time.monotonic() - started, 1)}) + "\n")
        entry = {"step": trainer.step, "time": time.time(), **trainer.evaluate()}
        log.write(json.dumps(entry) + "\n")
    trainer.save()
