"""A Gradio app shaped like Zyphra Zonos's ``gradio_interface.py``, with only the model stubbed.

Runs under the real Gradio release Zonos's lock pins (5.15.0), in its own environment under
``.cache/`` (``./bootstrap test`` builds it from ``gradio-requirements.lock``), so the upload
route, the ``/call`` event stream, error events and the file route the adapter meets are
Gradio's own. The interface has the same component types, in the same order, with the same
output types as upstream's ``build_interface()``; see the comments for the upstream lines.

The stand-in model "speaks" a voiced buzz of 0.07 s per character at the requested speaking
rate, and, like upstream (``max_new_tokens = 86 * 30`` in ``generate_audio``), never generates
more than 30 s: a longer text comes back cut off, exactly the failure the adapter must catch.
Text containing ``RUNAWAY`` never reaches its end token (generation runs to the cap); text
containing ``RAISE_GRADIO_ERROR`` raises ``gr.Error``; text containing ``CRASH`` raises a plain
exception (what a CUDA error inside the model looks like to Gradio).

Usage: ``python zonos_gradio_app.py PORT CALL_LOG`` (each call's inputs go to CALL_LOG as JSON lines).
"""

from __future__ import annotations

import json
import sys
import tempfile
import wave
from pathlib import Path

import gradio as gr
import numpy as np

OUTPUT_RATE = 44100  # the DAC autoencoder's rate (upstream: selected_model.autoencoder.sampling_rate)
MAX_SECONDS = 30.0  # upstream generate_audio: max_new_tokens = 86 * 30 at 86 frames per second
# A part of upstream's choices (zonos/conditioning.py, supported_language_codes): the codes the
# adapter maps to, and one it does not.
LANGUAGE_CHOICES = ["cmn", "de", "en-us", "es", "fr-fr", "it", "ja", "ko", "nl", "pl", "pt-br", "ru", "sw"]
MODELS = ["Zyphra/Zonos-v0.1-transformer", "Zyphra/Zonos-v0.1-hybrid"]


def _silence_file() -> str:
    """Upstream ships assets/silence_100ms.wav as the prefix audio's default value."""
    path = Path(tempfile.mkdtemp()) / "silence_100ms.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(OUTPUT_RATE)
        out.writeframes(b"\0\0" * (OUTPUT_RATE // 10))
    return str(path)


def build_interface(call_log: Path) -> gr.Blocks:
    def update_ui(model_choice: str) -> tuple[dict, ...]:
        # Upstream (update_ui) shows or hides 19 components by the model's conditioners.
        return (*tuple(gr.update(visible=True) for _ in range(18)), gr.update())

    def generate_audio(
        model_choice, text, language, speaker_audio, prefix_audio, e1, e2, e3, e4, e5, e6, e7, e8,
        vq_single, fmax, pitch_std, speaking_rate, dnsmos_ovrl, speaker_noised, cfg_scale, top_p, top_k,
        min_p, linear, confidence, quadratic, seed, randomize_seed, unconditional_keys,
        progress=gr.Progress(),  # noqa: B008 (Gradio's own idiom, as upstream)
    ):  # fmt: skip
        # Upstream generate_audio's signature: 29 inputs in this order, then progress.
        call = {
            "model_choice": model_choice,
            "text": text,
            "language": language,
            "speaker_audio": speaker_audio,
            "prefix_audio": prefix_audio,
            "speaking_rate": speaking_rate,
            "seed": seed,
            "randomize_seed": randomize_seed,
            "unconditional_keys": unconditional_keys,
        }
        with call_log.open("a") as log:
            log.write(json.dumps(call) + "\n")
        if "RAISE_GRADIO_ERROR" in text:
            raise gr.Error("the model refused this text")
        if "CRASH" in text:
            raise RuntimeError("CUDA error: out of memory")
        if speaker_audio is None or not Path(speaker_audio).is_file():
            raise RuntimeError("speaker audio was not uploaded")  # upstream: torchaudio.load fails
        seconds = min(0.07 * len(text) * 15.0 / float(speaking_rate), MAX_SECONDS)
        if "RUNAWAY" in text:
            seconds = MAX_SECONDS
        t = np.arange(int(seconds * OUTPUT_RATE)) / OUTPUT_RATE
        buzz = 0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
        # Upstream returns (sr_out, wav_out.squeeze().numpy()), seed: float32 samples.
        return (OUTPUT_RATE, buzz.astype(np.float32)), int(seed)

    # The layout of upstream build_interface(): components in the same order, types and defaults.
    with gr.Blocks() as demo:
        with gr.Row():
            with gr.Column():
                model_choice = gr.Dropdown(choices=MODELS, value=MODELS[0], label="Zonos Model Type")
                text = gr.Textbox(label="Text to Synthesize", value="Zonos uses eSpeak!", lines=4, max_length=500)
                language = gr.Dropdown(choices=LANGUAGE_CHOICES, value="en-us", label="Language Code")
            prefix_audio = gr.Audio(value=_silence_file(), label="Optional Prefix Audio", type="filepath")
            with gr.Column():
                speaker_audio = gr.Audio(label="Optional Speaker Audio (for cloning)", type="filepath")
                speaker_noised_checkbox = gr.Checkbox(label="Denoise Speaker?", value=False)
        with gr.Row():
            with gr.Column():
                dnsmos_slider = gr.Slider(1.0, 5.0, value=4.0, step=0.1, label="DNSMOS Overall")
                fmax_slider = gr.Slider(0, 24000, value=24000, step=1, label="Fmax (Hz)")
                vq_single_slider = gr.Slider(0.5, 0.8, 0.78, 0.01, label="VQ Score")
                pitch_std_slider = gr.Slider(0.0, 300.0, value=45.0, step=1, label="Pitch Std")
                speaking_rate_slider = gr.Slider(5.0, 30.0, value=15.0, step=0.5, label="Speaking Rate")
            with gr.Column():
                cfg_scale_slider = gr.Slider(1.0, 5.0, 2.0, 0.1, label="CFG Scale")
                seed_number = gr.Number(label="Seed", value=420, precision=0)
                randomize_seed_toggle = gr.Checkbox(label="Randomize Seed (before generation)", value=True)
        with gr.Accordion("Sampling", open=False), gr.Row():
            with gr.Column():
                linear_slider = gr.Slider(-2.0, 2.0, 0.5, 0.01, label="Linear")
                confidence_slider = gr.Slider(-2.0, 2.0, 0.40, 0.01, label="Confidence")
                quadratic_slider = gr.Slider(-2.0, 2.0, 0.00, 0.01, label="Quadratic")
            with gr.Column():
                top_p_slider = gr.Slider(0.0, 1.0, 0, 0.01, label="Top P")
                min_k_slider = gr.Slider(0.0, 1024, 0, 1, label="Min K")
                min_p_slider = gr.Slider(0.0, 1.0, 0, 0.01, label="Min P")
        with gr.Accordion("Advanced Parameters", open=False):
            with gr.Row():
                unconditional_keys = gr.CheckboxGroup(
                    [
                        "speaker",
                        "emotion",
                        "vqscore_8",
                        "fmax",
                        "pitch_std",
                        "speaking_rate",
                        "dnsmos_ovrl",
                        "speaker_noised",
                    ],
                    value=["emotion"],
                    label="Unconditional Keys",
                )
            with gr.Row():
                emotion1 = gr.Slider(0.0, 1.0, 1.0, 0.05, label="Happiness")
                emotion2 = gr.Slider(0.0, 1.0, 0.05, 0.05, label="Sadness")
                emotion3 = gr.Slider(0.0, 1.0, 0.05, 0.05, label="Disgust")
                emotion4 = gr.Slider(0.0, 1.0, 0.05, 0.05, label="Fear")
            with gr.Row():
                emotion5 = gr.Slider(0.0, 1.0, 0.05, 0.05, label="Surprise")
                emotion6 = gr.Slider(0.0, 1.0, 0.05, 0.05, label="Anger")
                emotion7 = gr.Slider(0.0, 1.0, 0.1, 0.05, label="Other")
                emotion8 = gr.Slider(0.0, 1.0, 0.2, 0.05, label="Neutral")
        with gr.Column():
            generate_button = gr.Button("Generate Audio")
            # Upstream's output: gr.Audio(type="numpy", autoplay=True); Gradio writes it to a .wav.
            output_audio = gr.Audio(label="Generated Audio", type="numpy", autoplay=True)

        ui_outputs = [
            text,
            language,
            speaker_audio,
            prefix_audio,
            emotion1,
            emotion2,
            emotion3,
            emotion4,
            emotion5,
            emotion6,
            emotion7,
            emotion8,
            vq_single_slider,
            fmax_slider,
            pitch_std_slider,
            speaking_rate_slider,
            dnsmos_slider,
            speaker_noised_checkbox,
            unconditional_keys,
        ]
        model_choice.change(fn=update_ui, inputs=[model_choice], outputs=ui_outputs)
        demo.load(fn=update_ui, inputs=[model_choice], outputs=ui_outputs)
        # Upstream's click handler: no api_name, so Gradio names the endpoint after the function.
        generate_button.click(
            fn=generate_audio,
            inputs=[
                model_choice,
                text,
                language,
                speaker_audio,
                prefix_audio,
                emotion1,
                emotion2,
                emotion3,
                emotion4,
                emotion5,
                emotion6,
                emotion7,
                emotion8,
                vq_single_slider,
                fmax_slider,
                pitch_std_slider,
                speaking_rate_slider,
                dnsmos_slider,
                speaker_noised_checkbox,
                cfg_scale_slider,
                top_p_slider,
                min_k_slider,
                min_p_slider,
                linear_slider,
                confidence_slider,
                quadratic_slider,
                seed_number,
                randomize_seed_toggle,
                unconditional_keys,
            ],
            outputs=[output_audio, seed_number],
        )
    return demo


if __name__ == "__main__":
    port, call_log = int(sys.argv[1]), Path(sys.argv[2])
    # Upstream: demo.launch(server_name="0.0.0.0", server_port=7860); loopback here.
    build_interface(call_log).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=False)
