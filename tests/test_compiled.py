"""`--compile`: moshi's streaming pieces traced by torch.compile decode what the eager engine decodes.

The tracing (Dynamo) is what can go wrong with stateful streaming code: the first test runs it with the
eager backend, which executes the traced graphs as they are. Inductor's fused kernels could round
differently; in bfloat16 on this CPU they are made to decode what eager decodes, and on a GPU
`benchmarks/gpu_parity.py --compile` measures their agreement.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from antiphon.models.loader import load_model
from antiphon.server.engine import Engine
from antiphon.server.params import SamplingParams
from speech import seconds_of_speech

GREEDY = SamplingParams(text_temperature=0.0, audio_temperature=0.0)
SAMPLED = SamplingParams(text_temperature=0.7, text_topk=25, audio_temperature=0.8, audio_topk=250, text_seed=5,
                         audio_seed=9)


def run(engine: Engine, frames: np.ndarray, second: SamplingParams = SAMPLED) -> list[np.ndarray]:
    """Two sessions, one greedy and one with `second`'s sampling; the second joins late and skips a tick."""
    outputs = []
    for index, frame in enumerate(frames):
        stepping = np.array([True, index >= 2 and index != 6])
        joining = {0: GREEDY} if index == 0 else {1: second} if index == 2 else None
        result = engine.step(np.stack([frame, frame[::-1].copy()]), stepping, joining)
        outputs.append(np.where(result.produced[:, None],
                                np.concatenate([result.text[:, None], result.audio], axis=1), -1))
    return outputs


def test_compiled_pieces_trace_once_decode_the_same_and_give_the_model_back() -> None:
    model = load_model("test-small", random_weights=True)
    frames = seconds_of_speech(1.0)[:12 * 1920].reshape(12, 1920)
    eager = Engine(model, slots=2)
    expected = run(eager, frames)
    eager.close()

    graphs: list[int] = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(len(graph_module.graph.nodes))
        return graph_module.forward

    engine = Engine(model, slots=2, compile_backend=counting_backend)
    engine.warmup()
    compiled_in_warmup = len(graphs)
    got = run(engine, frames)
    engine.close()
    assert compiled_in_warmup > 0
    assert len(graphs) == compiled_in_warmup, "a new step must not compile again"
    for step, (a, b) in enumerate(zip(expected, got)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step}")
    assert "forward_text" not in vars(model.lm) and "forward_depformer" not in vars(model.lm)
    assert "forward" not in vars(model.mimi.encoder)
    assert not any("_complete_kv" in vars(module) for module in [*model.lm.modules(), *model.mimi.modules()])


def test_the_in_place_kv_write_gives_what_moshis_does_through_the_ring_and_masked_steps() -> None:
    from moshi.modules.transformer import StreamingMultiheadAttention

    from antiphon.server.compiled import _complete_kv_in_place

    torch.manual_seed(0)
    for weights_per_step in (0, 4):  # 4: the depth transformer's attention, whose cache ignores exec_mask
        ours, moshis = (StreamingMultiheadAttention(16, 2, causal=True, context=5, rope=None,
                                                    weights_per_step=weights_per_step) for _ in range(2))
        with ours.streaming(3), moshis.streaming(3):
            for step in range(9):  # past the 5-slot ring
                k, v = torch.randn(2, 3, 2, 1, 8)
                exec_mask = torch.tensor([True, step % 3 != 1, step > 2])
                ours._streaming_state.exec_mask[:] = exec_mask
                moshis._streaming_state.exec_mask[:] = exec_mask
                got, expected = _complete_kv_in_place(ours, k, v), moshis._complete_kv(k, v)
                for name, a, b in zip(("keys", "values", "positions"), got, expected):
                    assert torch.equal(a, b), (weights_per_step, step, name)
                assert torch.equal(ours._streaming_state.kv_cache.end_offset,
                                   moshis._streaming_state.kv_cache.end_offset)


@pytest.mark.parametrize("int8_weights", [False, True], ids=["model's weights", "int8 weights"])
def test_inductor_in_bfloat16_decodes_the_greedy_tokens_eager_decodes(int8_weights: bool) -> None:
    """`--compile` as served (Inductor's kernels) on the model's bfloat16, with its own weights and with
    int8 ones (`--int8-weights`): fused kernels that kept their intermediates in float32, or Inductor's own
    nearest-codeword search, would change tokens within a few steps."""
    model = load_model("test-small", random_weights=True, dtype=torch.bfloat16, int8_weights=int8_weights)
    frames = seconds_of_speech(2.0)[:24 * 1920].reshape(24, 1920)
    eager = Engine(model, slots=2)
    expected = run(eager, frames, second=GREEDY)
    eager.close()
    compiled = Engine(model, slots=2, compile_backend="inductor")
    compiled.warmup()
    got = run(compiled, frames, second=GREEDY)
    compiled.close()
    for step, (a, b) in enumerate(zip(expected, got)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step}")
