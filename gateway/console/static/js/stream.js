// Streamed playback of the gateway's streamed WAV (16-bit mono PCM after a RIFF header of
// unknown length): each piece is scheduled on an AudioContext as it arrives, and the whole is
// kept for the player and the download once the stream ends.
import { h, showIn } from "./ui.js";

function findData(bytes) {
  // RIFF/WAVE: walk the chunks to "fmt " (sample rate) and "data" (the PCM that follows).
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 12, rate = null;
  while (offset + 8 <= bytes.length) {
    const tag = String.fromCharCode(...bytes.subarray(offset, offset + 4));
    const size = view.getUint32(offset + 4, true);
    if (tag === "fmt " && offset + 16 <= bytes.length) rate = view.getUint32(offset + 12, true);
    if (tag === "data") return { rate, start: offset + 8 };
    offset += 8 + size + (size % 2);
  }
  return null;
}

export async function playWavStream(response, container) {
  const reader = response.body.getReader();
  const parts = [];
  let header = new Uint8Array(0);
  let data = null;
  let carry = null;
  let context = null;
  let playAt = 0;
  let seconds = 0;
  const progress = h("p", { role: "status", text: "Streaming…" });
  showIn(container, progress);
  const schedule = (pcm) => {
    if (carry) {
      const joined = new Uint8Array(carry.length + pcm.length);
      joined.set(carry);
      joined.set(pcm, carry.length);
      pcm = joined;
      carry = null;
    }
    if (pcm.length % 2) {
      carry = pcm.slice(-1);
      pcm = pcm.slice(0, -1);
    }
    if (!pcm.length) return;
    const view = new DataView(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    const buffer = context.createBuffer(1, pcm.length / 2, data.rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < channel.length; i++) channel[i] = view.getInt16(i * 2, true) / 32768;
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    playAt = Math.max(playAt, context.currentTime + 0.05);
    source.start(playAt);
    playAt += buffer.duration;
    seconds += buffer.duration;
    progress.textContent = `Streaming… ${seconds.toFixed(1)} s received`;
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    if (!data) {
      const joined = new Uint8Array(header.length + value.length);
      joined.set(header);
      joined.set(value, header.length);
      header = joined;
      const found = findData(header);
      if (found && found.rate) {
        data = found;
        context = new AudioContext();
        schedule(header.subarray(found.start));
      }
    } else {
      schedule(value);
    }
  }
  progress.textContent = `Stream complete: ${seconds.toFixed(1)} s.`;
  return new Blob(parts, { type: "audio/wav" });
}
