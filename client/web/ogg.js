// Ogg encapsulation of Opus (RFC 7845): pages out for the microphone, packets in for playback.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = (r & 0x80000000) ? ((r << 1) ^ 0x04c11db7) : (r << 1);
    table[i] = r >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ bytes[i]) & 0xff]) >>> 0;
  return crc;
}

const textBytes = (s) => new TextEncoder().encode(s);

export class OggOpusWriter {
  // Opus granule positions count 48 kHz samples whatever the input rate.
  constructor(inputSampleRate) {
    this.inputSampleRate = inputSampleRate;
    this.serial = (Math.random() * 0xffffffff) >>> 0;
    this.sequence = 0;
    this.granule = 0n;
  }

  headerPages() {
    const head = new Uint8Array(19);
    head.set(textBytes("OpusHead"), 0);
    const view = new DataView(head.buffer);
    head[8] = 1;                               // version
    head[9] = 1;                               // channels
    view.setUint16(10, 312, true);             // pre-skip of libopus at 48 kHz
    view.setUint32(12, this.inputSampleRate, true);
    view.setInt16(16, 0, true);                // output gain
    head[18] = 0;                              // mapping family: mono/stereo
    const vendor = textBytes("antiphon");
    const tags = new Uint8Array(8 + 4 + vendor.length + 4);
    tags.set(textBytes("OpusTags"), 0);
    new DataView(tags.buffer).setUint32(8, vendor.length, true);
    tags.set(vendor, 12);
    return concat([this.page([head], 0x02), this.page([tags], 0)]);
  }

  // One page holding `packets`, which together last `samples48k` samples at 48 kHz.
  audioPage(packets, samples48k) {
    this.granule += BigInt(samples48k);
    return this.page(packets, 0);
  }

  page(packets, flags) {
    const lacing = [];
    for (const packet of packets) {
      let left = packet.length;
      while (left >= 255) { lacing.push(255); left -= 255; }
      lacing.push(left);
    }
    const bodyLength = packets.reduce((n, p) => n + p.length, 0);
    const page = new Uint8Array(27 + lacing.length + bodyLength);
    const view = new DataView(page.buffer);
    page.set(textBytes("OggS"), 0);
    page[4] = 0;
    page[5] = flags;
    view.setBigUint64(6, this.granule, true);
    view.setUint32(14, this.serial, true);
    view.setUint32(18, this.sequence++, true);
    page[26] = lacing.length;
    page.set(lacing, 27);
    let offset = 27 + lacing.length;
    for (const packet of packets) { page.set(packet, offset); offset += packet.length; }
    view.setUint32(22, crc32(page), true);
    return page;
  }
}

// Splits a stream of Ogg bytes into packets, skipping the two Opus header packets.
export class OggOpusReader {
  constructor() {
    this.buffer = new Uint8Array(0);
    this.partial = [];
    this.packetsSeen = 0;
  }

  push(bytes) {
    this.buffer = concat([this.buffer, bytes]);
    const packets = [];
    for (;;) {
      if (this.buffer.length < 27) break;
      if (this.buffer[0] !== 0x4f || this.buffer[1] !== 0x67 || this.buffer[2] !== 0x67 || this.buffer[3] !== 0x53) {
        throw new Error("audio from the server is not an Ogg stream");
      }
      const segments = this.buffer[26];
      if (this.buffer.length < 27 + segments) break;
      const lacing = this.buffer.subarray(27, 27 + segments);
      const bodyLength = lacing.reduce((n, v) => n + v, 0);
      const end = 27 + segments + bodyLength;
      if (this.buffer.length < end) break;
      let offset = 27 + segments;
      for (const value of lacing) {
        this.partial.push(this.buffer.subarray(offset, offset + value));
        offset += value;
        if (value < 255) {
          const packet = concat(this.partial);
          this.partial = [];
          if (this.packetsSeen++ >= 2) packets.push(packet);
        }
      }
      this.buffer = this.buffer.slice(end);
    }
    return packets;
  }
}

export function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) { out.set(part, offset); offset += part.length; }
  return out;
}
