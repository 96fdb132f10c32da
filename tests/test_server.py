"""A real server on 127.0.0.1, real WebSocket clients, real Ogg Opus, real speech."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from antiphon.client.chat import FRAME_SIZE, SAMPLE_RATE, chat_url, talk
from speech import seconds_of_speech

GREEDY = {"text_temperature": 0, "audio_temperature": 0}


def test_three_sessions_in_real_time_and_a_fourth_is_refused(server):
    voices = ["en", "en-us+f3", "en-gb+m3"]
    clips = [seconds_of_speech(4.0, voice) for voice in voices]

    async def scenario():
        sessions = [asyncio.ensure_future(talk(chat_url(server.base, **GREEDY, text_frames=1), clip))
                    for clip in clips]
        await asyncio.sleep(1.5)  # all three are live now
        info = json.loads(server.get("/api/info"))
        refused = await talk(chat_url(server.base), clips[0][:FRAME_SIZE * 5])
        return await asyncio.gather(*sessions), refused, info

    replies, refused, info = asyncio.run(scenario())
    assert info["slots"] == {"total": 3, "used": 3, "free": 0}
    assert refused.handshake is None
    assert refused.close_code == 1013
    assert refused.errors and "server full" in refused.errors[0] and "3 slots" in refused.errors[0]

    for clip, reply in zip(clips, replies):
        assert reply.handshake == b"\x00\x00\x00"
        assert reply.metadata["model"] and reply.metadata["session_id"]
        assert reply.metadata["sampling"]["text_temperature"] == 0
        assert reply.errors == []
        sent_seconds = len(clip) / SAMPLE_RATE
        got_seconds = len(reply.pcm) / SAMPLE_RATE
        # one reply frame per input frame, less the LM's one-frame delay
        assert sent_seconds - 0.25 <= got_seconds <= sent_seconds + 0.1, (sent_seconds, got_seconds)
        assert np.abs(reply.pcm).max() > 0
        assert len(reply.timed_text) > 5
        frames = [frame for frame, _ in reply.timed_text]
        assert frames == sorted(frames) and frames[-1] < len(clip) // FRAME_SIZE

    metrics = server.get("/metrics").decode()
    assert 'antiphon_refused_sessions_total{reason="full"} 1.0' in metrics
    assert "antiphon_tick_seconds_bucket" in metrics


def test_plain_text_messages_as_kyutai_clients_expect(server):
    clip = seconds_of_speech(2.0)
    reply = asyncio.run(talk(chat_url(server.base, **GREEDY), clip))
    assert reply.text and not reply.timed_text
    assert reply.metadata["text_frames"] is False


def test_same_input_same_greedy_reply(server):
    """Sessions are independent of their slot and of what ran before in it."""
    clip = seconds_of_speech(2.0, "en+f2")
    first = asyncio.run(talk(chat_url(server.base, **GREEDY, text_frames=1), clip))
    second = asyncio.run(talk(chat_url(server.base, **GREEDY, text_frames=1), clip))
    assert first.timed_text == second.timed_text
    assert bytes(first.ogg) == bytes(second.ogg)


def test_health_info_metrics(server):
    assert json.loads(server.get("/healthz")) == {"status": "ok"}
    info = json.loads(server.get("/api/info"))
    assert info["untrained"] is False and info["slots"]["total"] == 3 and info["version"]
    assert b"antiphon_sessions_active" in server.get("/metrics")
