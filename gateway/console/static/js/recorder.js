// Recording in the browser: getUserMedia + MediaRecorder, with a level meter drawn on every
// animation frame from an AnalyserNode (so the feedback keeps up with the voice), a timer,
// playback and re-record. The browser's own format (webm/opus) is uploaded as it is.
import { h, showIn, errorBox } from "./ui.js";

const MIME_TYPES = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/mp4"];

function pickMimeType() {
  return MIME_TYPES.find((type) => window.MediaRecorder && MediaRecorder.isTypeSupported(type)) || "";
}

export function extensionFor(type) {
  if (type.includes("webm")) return "webm";
  if (type.includes("ogg")) return "ogg";
  if (type.includes("mp4")) return "m4a";
  return "wav";
}

// A recorder panel. `onOpen` runs once the microphone is open, before recording starts (the
// consent step asks the gateway for the challenge's words then); `onRecorded(blob)` gets each take.
export function recorderPanel({ label, onOpen, onRecorded, onReset }) {
  const meterBar = h("div", {});
  const meter = h("div", {
    class: "meter",
    role: "meter",
    "aria-label": `${label}: input level`,
    "aria-valuemin": "0",
    "aria-valuemax": "100",
    "aria-valuenow": "0",
  }, meterBar);
  const timer = h("span", { class: "mono", "aria-live": "off", text: "0.0 s" });
  const status = h("div", { "aria-live": "polite" });
  const playback = h("div", {});
  const record = h("button", { type: "button", text: `Record ${label}` });
  const stop = h("button", { type: "button", class: "danger", text: "Stop", "aria-label": `Stop recording ${label}`, disabled: true });
  let session = null;

  record.addEventListener("click", async () => {
    record.disabled = true;
    showIn(playback);
    onReset?.();
    try {
      session = await startRecording({
        onOpen,
        onLevel: (level) => {
          const pct = Math.min(100, Math.round(level * 100));
          meterBar.style.width = `${pct}%`;
          meter.setAttribute("aria-valuenow", String(pct));
        },
        onTick: (seconds) => {
          timer.textContent = `${seconds.toFixed(1)} s`;
        },
      });
      showIn(status, h("p", { role: "status", text: "Recording… read now, then press Stop." }));
      stop.disabled = false;
      stop.focus();
    } catch (error) {
      showIn(status, errorBox(error));
      record.disabled = false;
    }
  });

  stop.addEventListener("click", async () => {
    stop.disabled = true;
    const { blob, seconds } = await session.stop();
    session = null;
    meterBar.style.width = "0";
    record.textContent = "Re-record";
    record.disabled = false;
    showIn(status, h("p", { role: "status", text: `Recorded ${seconds.toFixed(1)} s. Play it back before you submit.` }));
    showIn(playback, h("audio", { controls: true, src: URL.createObjectURL(blob), "aria-label": `${label}: playback` }));
    onRecorded(blob, seconds);
  });

  return h("div", { class: "panel recorder" }, h("div", { class: "row" }, record, stop, meter, timer), status, playback);
}

export async function startRecording({ onOpen, onLevel, onTick }) {
  if (!navigator.mediaDevices || !window.MediaRecorder) throw new Error("This browser cannot record audio.");
  let stream;
  try {
    // No processing: the consent checks compare the voice itself.
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (error) {
    throw new Error(`The microphone did not open (${error.name}). Allow microphone access and try again.`);
  }
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const mimeType = pickMimeType();
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
  const chunks = [];
  recorder.addEventListener("dataavailable", (e) => e.data.size && chunks.push(e.data));
  const started = performance.now();
  let frame = 0;
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    // RMS on a speech-friendly scale: -50 dBFS reads empty, 0 dBFS full.
    const db = 10 * Math.log10(sum / samples.length + 1e-12);
    onLevel(Math.max(0, (db + 50) / 50));
    onTick((performance.now() - started) / 1000);
    frame = requestAnimationFrame(draw);
  };
  recorder.start(250);
  draw();
  // Recording runs before onOpen (the consent step's reveal of the words), so nothing said right
  // after the words appear is lost to the round trip.
  try {
    if (onOpen) await onOpen();
  } catch (error) {
    cancelAnimationFrame(frame);
    recorder.stop();
    stream.getTracks().forEach((t) => t.stop());
    context.close();
    throw error;
  }
  return {
    stop: () =>
      new Promise((resolve) => {
        recorder.addEventListener(
          "stop",
          () => {
            cancelAnimationFrame(frame);
            stream.getTracks().forEach((t) => t.stop());
            context.close();
            resolve({
              blob: new Blob(chunks, { type: recorder.mimeType || mimeType || "audio/webm" }),
              seconds: (performance.now() - started) / 1000,
            });
          },
          { once: true },
        );
        recorder.stop();
      }),
  };
}

// Seconds of audio in a file or recording, decoded by the browser (for the live count).
export async function durationOf(blob) {
  const context = new OfflineAudioContext(1, 1, 16000);
  try {
    const buffer = await context.decodeAudioData(await blob.arrayBuffer());
    return buffer.duration;
  } catch {
    return null;
  }
}
