// A waveform (min/max per pixel column) with the detector's marked segments shaded over it.
const COLOURS = { keyed: "rgba(185, 28, 28, 0.28)", perth: "rgba(29, 78, 216, 0.25)", audioseal: "rgba(22, 101, 52, 0.25)" };

export async function drawWaveform(canvas, blob, segments) {
  const g = canvas.getContext("2d");
  let samples = null, duration = 0;
  try {
    const context = new OfflineAudioContext(1, 1, 16000);
    const buffer = await context.decodeAudioData(await blob.arrayBuffer());
    samples = buffer.getChannelData(0);
    duration = buffer.duration;
  } catch {
    // a format this browser cannot decode: the segments are still listed in the table
  }
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  if (duration) {
    for (const s of segments) {
      g.fillStyle = COLOURS[s.scheme] || "rgba(138, 75, 0, 0.25)";
      g.fillRect((s.start / duration) * width, 0, ((s.end - s.start) / duration) * width, height);
    }
  }
  if (!samples) return;
  g.fillStyle = "#1a1a1a";
  const step = Math.max(1, Math.floor(samples.length / width));
  for (let x = 0; x < width; x++) {
    let lo = 1, hi = -1;
    for (let i = x * step; i < Math.min(samples.length, (x + 1) * step); i++) {
      if (samples[i] < lo) lo = samples[i];
      if (samples[i] > hi) hi = samples[i];
    }
    if (hi < lo) continue;
    g.fillRect(x, ((1 - hi) / 2) * height, 1, Math.max(1, ((hi - lo) / 2) * height));
  }
}
