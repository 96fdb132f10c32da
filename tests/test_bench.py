"""`antiphon bench` on this machine's CPU: the engine beside moshi's modules, and the full server."""

from __future__ import annotations

import json
import subprocess
import sys


def bench(tmp_path, *options: str) -> dict:
    out = tmp_path / "bench"
    subprocess.run([sys.executable, "-m", "antiphon.server", "bench", "--model", "test-small", "--random-weights",
                    "--device", "cpu", "--seconds", "2", "--warmup-frames", "2", "--out", str(out), *options],
                   check=True, capture_output=True, timeout=600)
    assert out.with_suffix(".md").read_text().startswith("# ")
    return json.loads(out.with_suffix(".json").read_text())


def test_bench_times_the_engine_and_moshis_modules_on_the_same_frames(tmp_path):
    result = bench(tmp_path, "--sessions", "1,2")
    assert [row["sessions"] for row in result["rows"]] == [1, 2]
    for row in result["rows"]:
        ours, theirs = row["antiphon"], row["moshi"]
        assert ours["frames"] == row["sessions"] * 25 and 0 <= ours["late_frames"] <= ours["frames"]  # 2 s each
        assert 0 < ours["tick_ms"]["p50"] <= ours["tick_ms"]["p99"]
        assert 0 < theirs["frame_ms"]["p50"] <= theirs["frame_ms"]["p99"]


def test_server_bench_answers_every_frame_and_reads_the_servers_engine_figures(tmp_path):
    # the server decodes the agent's audio in bfloat16 (--decoder-dtype), passed on from the bench
    result = bench(tmp_path, "--sessions", "2", "--server", "--client-processes", "1", "--decoder-dtype", "bfloat16")
    [row] = result["rows"]
    assert row["errors"] == [] and row["frames"] == row["expected_frames"] == 2 * 24
    assert row["ticks"] >= 25 and 0 < row["tick_ms_mean"] and 0 <= row["ticks_within_frame"] <= 1
    assert row["server_cpu_cores"] > 0
    assert (tmp_path / "bench-server-2.log").is_file()
