"""The `antiphon` command."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys

from ..models.codec_precision import DECODER_DTYPES
from ..models.configs import BUILTIN_CONFIGS, DEFAULT_MODEL

_DTYPES = ("auto", "float32", "bfloat16", "float16")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="antiphon", description="Full-duplex speech agent server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve sessions over WebSockets")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8998)
    serve.add_argument("--model", default=DEFAULT_MODEL,
                       help="a folder in Kyutai's checkpoint layout, or a built-in configuration "
                            f"({', '.join(BUILTIN_CONFIGS)}; default: {DEFAULT_MODEL}, shipped in weights/)")
    serve.add_argument("--random-weights", action="store_true",
                       help="build the model's configuration with random weights (untrained)")
    serve.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    serve.add_argument("--dtype", choices=_DTYPES, default="auto",
                       help="LM weights' dtype (auto: bfloat16 on cuda, float32 on cpu)")
    serve.add_argument("--decoder-dtype", choices=DECODER_DTYPES, default="float32",
                       help="the codec decoder's dtype: bfloat16 moves fewer bytes a frame and changes no "
                            "token, only the agent's audio, by rounding")
    serve.add_argument("--int8-weights", action="store_true",
                       help="keep the LM's linear weights in int8 (a scale per output channel): about half the "
                            "bytes a step reads, and other tokens (benchmarks/results/int8_agreement.md); "
                            "faster only with --compile")
    serve.add_argument("--slots", type=int, default=4, help="sessions served at once (the batch)")
    serve.add_argument("--context-frames", type=int,
                       help="attend to at most this many past 80 ms frames (default: the model's own, 3,000 "
                            "for Moshi). Less keeps less KV cache a session (Moshi 7B: 1.5 GB at 3,000 in "
                            "bfloat16) and changes only sessions longer than it")
    serve.add_argument("--frame-graphs", action=argparse.BooleanOptionalAction, default=True,
                       help="CUDA: capture each frame's step as two CUDA graphs (the encoding, then the rest); "
                            "--no-frame-graphs runs moshi's graphed pieces with Python between them")
    serve.add_argument("--compile", action="store_true",
                       help="torch.compile the step's pieces (fewer, fused kernels; on CUDA with frame graphs). "
                            "Kernels are told to round as eager's; their bfloat16 agreement with moshi on a GPU is "
                            "in benchmarks/results/gpu_parity_compiled.md")
    serve.add_argument("--max-message-kib", type=int, default=64, help="largest client message")
    serve.add_argument("--idle-seconds", type=float, default=10.0,
                       help="close a session that sends no audio for this long")
    serve.add_argument("--send-queue-frames", type=int, default=50,
                       help="reply frames that may wait for a client that is not reading before it is "
                            "disconnected")
    serve.add_argument("--ping-seconds", type=float, default=10.0,
                       help="WebSocket keep-alive: ping every this many seconds, drop a client that has "
                            "not answered within as long (catches vanished and non-reading clients)")
    serve.add_argument("--max-messages-per-second", type=int, default=100,
                       help="close a session whose client sends more messages a second than this")
    serve.add_argument("--auth-token", help="require this bearer token ('Authorization: Bearer TOKEN' or "
                                            "?auth_id=TOKEN); default: $ANTIPHON_AUTH_TOKEN, else none")
    serve.add_argument("--allowed-origin", action="append", default=[],
                       help="a browser Origin allowed to open sessions (repeatable; default: any)")
    serve.add_argument("--max-sessions-per-client", type=int, default=0,
                       help="sessions one client address may hold at once (0: no limit)")
    serve.add_argument("--ssl-certfile", help="serve https/wss with this certificate (PEM)")
    serve.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    serve.add_argument("--grace-seconds", type=float, default=30.0,
                       help="on SIGTERM, how long live sessions may go on before the server exits")
    serve.add_argument("--log-level", default="info")
    bench = commands.add_parser("bench", help="sessions per device: the engine beside moshi's own modules")
    talk = commands.add_parser("talk", help="stream a sound file to a server, save the reply")
    demo = commands.add_parser("demo", help="talk to a server with this machine's microphone and speakers")
    data = commands.add_parser("data", help="generate the synthetic conversation dataset")
    train = commands.add_parser("train", help="train the small default model")
    trainers = train.add_subparsers(dest="what", required=True)
    train_codec = trainers.add_parser("codec", help="train the small Mimi codec")
    train_lm = trainers.add_parser("lm", help="train the small multi-stream LM")
    train_lm_data = trainers.add_parser("lm-data", help="supply a running LM training with new conversations")
    evaluate = commands.add_parser("eval", help="evaluate the small default model")
    evaluations = evaluate.add_subparsers(dest="what", required=True)
    eval_codec = evaluations.add_parser("codec", help="the codec on the held-out conversations")
    eval_model = evaluations.add_parser("model", help="the model on the held-out conversations, served")
    from ..client import demo as demo_module, files as files_module
    from ..models.data import cli as data_module
    from ..models.eval import codec_eval, model_eval
    from . import bench as bench_module
    from ..models.train import codec as codec_training, lm as lm_training, lm_supply
    for command, module in ((bench, bench_module), (talk, files_module), (demo, demo_module), (data, data_module),
                            (train_codec, codec_training), (train_lm, lm_training),
                            (train_lm_data, lm_supply), (eval_codec, codec_eval),
                            (eval_model, model_eval)):
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    if args.command != "serve":
        args.run(args)
        return
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _eager_without_compiler()
    from .serve import ServeError, serve as run_serve
    try:
        run_serve(args)
    except ServeError as exc:
        print(f"antiphon: error: {exc}", file=sys.stderr)
        sys.exit(2)


_EAGER = None


def _eager_without_compiler() -> None:
    """moshi torch.compile's a few helpers on first use, and torch.compile needs a C and C++ compiler
    (inductor on CPU, Triton's launchers on CUDA). Where there is none, as in slim images, those helpers
    run eagerly instead of crashing the first step."""
    if shutil.which("cc") and shutil.which("c++"):
        return
    from moshi.utils.compile import no_compile

    # Entered for the life of the process (moshi checks the switch on every call); the reference keeps
    # the context from being collected, which would switch compiling back on.
    global _EAGER
    _EAGER = no_compile()
    _EAGER.__enter__()
    logging.getLogger(__name__).warning("no C/C++ compiler found: torch.compile is off, moshi's compiled "
                                        "helpers run eagerly")
