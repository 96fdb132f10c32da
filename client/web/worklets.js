// Audio worklets: the microphone tap, and the playback jitter buffer.

class CaptureProcessor extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.port.postMessage(channel.slice(0));
    return true;
  }
}

// A ring buffer that waits for `targetSamples` before playing, refills to it after running dry
// (counted as an underrun), and drops the oldest audio beyond `maxSamples` so playback never drifts
// behind the conversation. Fades over a few milliseconds at each stop and start so none of it clicks.
class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetSamples, maxSamples } = options.processorOptions;
    this.target = targetSamples;
    this.max = maxSamples;
    this.ring = new Float32Array(maxSamples * 2);
    this.read = 0;
    this.write = 0;
    this.playing = false;
    this.fade = 0;
    this.fadeLength = 96;
    this.counters = { receivedSamples: 0, playedSamples: 0, underruns: 0, droppedSamples: 0, bufferedSamples: 0 };
    this.sinceReport = 0;
    this.port.onmessage = (event) => this.enqueue(event.data);
  }

  available() { return this.write - this.read; }

  enqueue(samples) {
    for (let i = 0; i < samples.length; i++) this.ring[(this.write + i) % this.ring.length] = samples[i];
    this.write += samples.length;
    this.counters.receivedSamples += samples.length;
    const excess = this.available() - this.max;
    if (excess > 0) {
      const drop = this.available() - this.target;
      this.read += drop;
      this.counters.droppedSamples += drop;
    }
  }

  process(_, outputs) {
    const out = outputs[0][0];
    if (!this.playing && this.available() >= this.target) { this.playing = true; this.fade = 0; }
    if (this.playing) {
      const n = Math.min(out.length, this.available());
      for (let i = 0; i < n; i++) {
        const gain = Math.min(1, (this.fade + i) / this.fadeLength);
        const tail = this.available() - i <= this.fadeLength ? (this.available() - i) / this.fadeLength : 1;
        out[i] = this.ring[(this.read + i) % this.ring.length] * Math.min(gain, tail);
      }
      this.fade += n;
      this.read += n;
      this.counters.playedSamples += n;
      if (n < out.length) { this.playing = false; this.counters.underruns += 1; }
    }
    this.sinceReport += out.length;
    if (this.sinceReport >= sampleRate / 4) {
      this.sinceReport = 0;
      this.counters.bufferedSamples = this.available();
      this.port.postMessage({ ...this.counters });
    }
    return true;
  }
}

registerProcessor("antiphon-capture", CaptureProcessor);
registerProcessor("antiphon-playback", PlaybackProcessor);
