// Antiphon's browser client: microphone → Ogg Opus → /api/chat → Opus → jitter buffer → speakers,
// with the agent's inner monologue shown as it is decoded.

import { OggOpusReader, OggOpusWriter, concat } from "./ogg.js";

const SAMPLE_RATE = 24000;
const FRAME_SAMPLES = 1920;              // 80 ms: one model step
const OPUS_FRAME_US = 20000;             // WebCodecs packets of 20 ms, four to an Ogg page
const PLAYBACK_TARGET_MS = 120;
const PLAYBACK_MAX_MS = 400;
const SAMPLING_FIELDS = ["text_temperature", "text_topk", "audio_temperature", "audio_topk", "text_seed", "audio_seed"];
const CLOSE_WORDS = {
  1000: "the session ended", 1001: "the server is going away", 1003: "the server refused a message",
  1006: "the connection was lost", 1007: "the server could not decode our audio",
  1008: "the server refused the session", 1009: "a message was too large", 1013: "the server is full",
};

const $ = (id) => document.getElementById(id);
const state = { stats: { latencyMs: null, latencies: [], bufferedMs: 0, underruns: 0, droppedMs: 0, playedMs: 0,
                         sentMs: 0, receivedMs: 0 }, session: null };
window.antiphon = state;  // for inspection from the console (and the tests)

function setStatus(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.kind = kind;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function chatUrl() {
  const url = new URL("api/chat", window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  for (const name of SAMPLING_FIELDS) {
    const value = $(name).value.trim();
    if (value !== "") url.searchParams.set(name, value);
  }
  return url.toString();
}

function level(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  const rms = Math.sqrt(sum / Math.max(1, samples.length));
  return Math.min(1, Math.max(0, (20 * Math.log10(rms + 1e-6) + 60) / 60));
}

function setMeter(id, value) { $(id).style.width = `${Math.round(value * 100)}%`; }

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
}

function renderStats() {
  const s = state.stats;
  $("stat-latency").textContent = s.latencyMs === null ? "–" : `${Math.round(s.latencyMs)} ms`;
  $("stat-buffer").textContent = `${Math.round(s.bufferedMs)} ms`;
  $("stat-late").textContent = `${s.underruns} underruns, ${Math.round(s.droppedMs)} ms dropped`;
  $("stat-traffic").textContent = `${(s.sentMs / 1000).toFixed(1)} s sent, ${(s.receivedMs / 1000).toFixed(1)} s received`;
}

class Session {
  constructor() {
    this.closed = false;
    this.sendTimes = [];          // when each 80 ms of microphone audio left
    this.receivedSamples = 0;
    this.capture = new Float32Array(0);
    this.pendingPackets = [];
    this.pendingSamples48k = 0;
  }

  async start() {
    if (!window.isSecureContext || !navigator.mediaDevices) {
      throw new Error("This browser only opens the microphone on a secure page: use https, or http://localhost / 127.0.0.1.");
    }
    if (!("AudioEncoder" in window) || !("AudioDecoder" in window)) {
      throw new Error("This browser lacks WebCodecs (AudioEncoder/AudioDecoder): use a recent Chromium, Edge, Safari or Firefox.");
    }
    setStatus("opening the microphone…");
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    this.context = new AudioContext({ sampleRate: SAMPLE_RATE, latencyHint: "interactive" });
    await this.context.audioWorklet.addModule("worklets.js");
    this.playback = new AudioWorkletNode(this.context, "antiphon-playback", {
      outputChannelCount: [1],
      processorOptions: { targetSamples: SAMPLE_RATE * PLAYBACK_TARGET_MS / 1000, maxSamples: SAMPLE_RATE * PLAYBACK_MAX_MS / 1000 },
    });
    this.playback.port.onmessage = (event) => this.onPlaybackCounters(event.data);
    this.playback.connect(this.context.destination);
    this.setUpCodecs();
    setStatus("connecting…");
    this.ws = new WebSocket(chatUrl());
    this.ws.binaryType = "arraybuffer";
    this.ws.onmessage = (event) => this.onMessage(new Uint8Array(event.data));
    this.ws.onclose = (event) => this.onClose(event);
    this.ws.onerror = () => showError("The connection to the server failed.");
  }

  setUpCodecs() {
    this.writer = new OggOpusWriter(SAMPLE_RATE);
    this.reader = new OggOpusReader();
    this.encoder = new AudioEncoder({
      output: (chunk) => this.onEncoded(chunk),
      error: (e) => showError(`Opus encoder: ${e.message}`),
    });
    this.encoder.configure({ codec: "opus", sampleRate: SAMPLE_RATE, numberOfChannels: 1, bitrate: 32000,
                             opus: { frameDuration: OPUS_FRAME_US, format: "opus" } });
    this.decoder = new AudioDecoder({
      output: (data) => this.onDecoded(data),
      error: (e) => showError(`Opus decoder: ${e.message}`),
    });
    this.decoder.configure({ codec: "opus", sampleRate: SAMPLE_RATE, numberOfChannels: 1 });
    this.decodeTimestamp = 0;
  }

  startMicrophone() {
    const source = this.context.createMediaStreamSource(this.stream);
    this.tap = new AudioWorkletNode(this.context, "antiphon-capture");
    this.tap.port.onmessage = (event) => this.onCapture(event.data);
    source.connect(this.tap);
    this.captureTimestamp = 0;
    this.send(concat([new Uint8Array([0x01]), this.writer.headerPages()]));
  }

  onCapture(samples) {
    if (this.closed) return;
    setMeter("meter-user", level(samples));
    this.capture = concat32(this.capture, samples);
    const chunk = SAMPLE_RATE * OPUS_FRAME_US / 1e6;
    while (this.capture.length >= chunk) {
      const data = new AudioData({ format: "f32-planar", sampleRate: SAMPLE_RATE, numberOfFrames: chunk,
                                   numberOfChannels: 1, timestamp: this.captureTimestamp,
                                   data: this.capture.slice(0, chunk) });
      this.captureTimestamp += OPUS_FRAME_US;
      this.capture = this.capture.slice(chunk);
      this.encoder.encode(data);
      data.close();
    }
  }

  onEncoded(chunk) {
    const packet = new Uint8Array(chunk.byteLength);
    chunk.copyTo(packet);
    this.pendingPackets.push(packet);
    this.pendingSamples48k += Math.round((chunk.duration || OPUS_FRAME_US) * 48000 / 1e6);
    if (this.pendingSamples48k >= 48000 * FRAME_SAMPLES / SAMPLE_RATE) {
      const page = this.writer.audioPage(this.pendingPackets, this.pendingSamples48k);
      this.pendingPackets = [];
      this.pendingSamples48k = 0;
      this.sendTimes.push(performance.now());
      state.stats.sentMs += 80;
      this.send(concat([new Uint8Array([0x01]), page]));
    }
  }

  send(bytes) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  onMessage(bytes) {
    const kind = bytes[0];
    const payload = bytes.subarray(1);
    if (kind === 0x00) {
      setStatus("live: speak to the agent", "live");
      showError("");
      this.startMicrophone();
    } else if (kind === 0x01) {
      for (const packet of this.reader.push(payload)) {
        this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: this.decodeTimestamp, data: packet }));
        this.decodeTimestamp += OPUS_FRAME_US;
      }
    } else if (kind === 0x02) {
      this.addText(new TextDecoder().decode(payload));
    } else if (kind === 0x04) {
      const info = JSON.parse(new TextDecoder().decode(payload));
      $("session-info").textContent = `session ${info.session_id} · model ${info.model}` +
        (info.untrained ? " (untrained: random weights)" : "");
    } else if (kind === 0x05) {
      showError(new TextDecoder().decode(payload));
    }
  }

  onDecoded(data) {
    const frames = data.numberOfFrames;
    const raw = new Float32Array(frames);
    data.copyTo(raw, { planeIndex: 0, format: "f32-planar" });
    const rate = data.sampleRate;
    data.close();
    const samples = rate === SAMPLE_RATE ? raw : downsample(raw, rate / SAMPLE_RATE);
    setMeter("meter-agent", level(samples));
    const before = Math.floor(this.receivedSamples / FRAME_SAMPLES);
    this.receivedSamples += samples.length;
    this.playback.port.postMessage(samples, [samples.buffer]);
    state.stats.receivedMs = this.receivedSamples / SAMPLE_RATE * 1000;
    // Reply frame j comes out of the step that took input frame j + 1 (the model's one-frame delay).
    for (let j = before; j < Math.floor(this.receivedSamples / FRAME_SAMPLES); j++) {
      const sent = this.sendTimes[j + 1];
      if (sent !== undefined) {
        state.stats.latencies.push(performance.now() - sent);
        if (state.stats.latencies.length > 50) state.stats.latencies.shift();
        state.stats.latencyMs = median(state.stats.latencies);
      }
    }
    renderStats();
  }

  onPlaybackCounters(counters) {
    state.playback = counters;
    state.stats.bufferedMs = counters.bufferedSamples / SAMPLE_RATE * 1000;
    state.stats.underruns = counters.underruns;
    state.stats.droppedMs = counters.droppedSamples / SAMPLE_RATE * 1000;
    state.stats.playedMs = counters.playedSamples / SAMPLE_RATE * 1000;
    renderStats();
  }

  addText(piece) {
    const span = document.createElement("span");
    span.textContent = piece;
    $("monologue").append(span);
    $("monologue").scrollTop = $("monologue").scrollHeight;
  }

  onClose(event) {
    const words = CLOSE_WORDS[event.code] || `closed (${event.code})`;
    setStatus(`disconnected: ${words}${event.reason ? `: ${event.reason}` : ""}`, "closed");
    this.stop();
  }

  stop() {
    if (this.closed) return;
    this.closed = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    for (const codec of [this.encoder, this.decoder]) if (codec && codec.state !== "closed") codec.close();
    if (this.context) this.context.close();
    $("connect").textContent = "Connect";
  }
}

function concat32(a, b) {
  const out = new Float32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// Averaging neighbours is the low-pass that keeps 2:1 decimation (48 → 24 kHz) free of aliasing.
function downsample(samples, factor) {
  const out = new Float32Array(Math.floor(samples.length / factor));
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (let k = 0; k < factor; k++) sum += samples[i * factor + k];
    out[i] = sum / factor;
  }
  return out;
}

$("connect").addEventListener("click", async () => {
  if (state.session && !state.session.closed) { state.session.stop(); setStatus("disconnected"); return; }
  $("monologue").textContent = "";
  showError("");
  state.session = new Session();
  $("connect").textContent = "Disconnect";
  try {
    await state.session.start();
  } catch (error) {
    showError(error.message);
    setStatus("not connected", "closed");
    state.session.stop();
  }
});

if (!window.isSecureContext) {
  showError("This page is not a secure context, so the browser will not open the microphone. " +
            "Serve Antiphon over https (for instance behind a TLS proxy), or open it as http://localhost.");
}
renderStats();
