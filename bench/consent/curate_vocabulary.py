"""How policy/consent/vocabulary.txt and decoy_words.txt were made (run by hand, offline).

vocabulary.txt: from the candidate nouns below, keep words that are in the recognizer's CMU
dictionary, then greedily (single-pronunciation and longer words first) keep a word only if its
pronunciation is at least three phone edits away from every word already kept. That removes
homophones and near pairs (pocket/rocket, castle/cattle, the voice/boys kind of confusion).
Then the words in ``CONFUSED`` are dropped (after the selection, so that no word enters that the
measurement did not read): phone distance does not predict every confusion of the recognizer, so
``--measure`` reads every word of the list, in random phrases of
four after the statement's anchor ("my confirmation words are ..."), with the benchmark's voices
(Piper at three rates, Festival, three espeak-ng voices), clean and with noise at 20 dB SNR, and
counts per word how often the phrase search heard another word in its place and how often it
heard this word in another's place. ``CONFUSED`` holds the words that went wrong that way.

decoy_words.txt: the 400 most probable words of the recognizer's general language model that are
in its dictionary (alphabetic only); they give speech that is not the statement somewhere to go
in the closed-vocabulary decoding (policy/consent/asr.py).

    .venv/bin/python -m bench.consent.curate_vocabulary [--write]
    .venv/bin/python -m bench.consent.curate_vocabulary --measure [--rounds 1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from pathlib import Path

from policy.consent.asr import pronunciation_dictionary

CANDIDATES = [
    "apple",
    "banana",
    "basket",
    "blanket",
    "bottle",
    "bucket",
    "butter",
    "button",
    "camel",
    "candle",
    "canyon",
    "carpet",
    "castle",
    "cherry",
    "chimney",
    "circus",
    "cobra",
    "coffee",
    "compass",
    "copper",
    "cricket",
    "crystal",
    "dolphin",
    "dragon",
    "eagle",
    "elbow",
    "engine",
    "falcon",
    "feather",
    "forest",
    "fountain",
    "garden",
    "giraffe",
    "glacier",
    "guitar",
    "hammer",
    "harbor",
    "helmet",
    "hockey",
    "honey",
    "island",
    "jacket",
    "jungle",
    "kettle",
    "kitten",
    "ladder",
    "lemon",
    "lizard",
    "lobster",
    "magnet",
    "mango",
    "marble",
    "meadow",
    "melon",
    "mirror",
    "monkey",
    "mountain",
    "muffin",
    "napkin",
    "needle",
    "noodle",
    "ocean",
    "olive",
    "orange",
    "orchid",
    "oyster",
    "paddle",
    "panda",
    "parrot",
    "peanut",
    "pencil",
    "pepper",
    "pickle",
    "pillow",
    "pilot",
    "planet",
    "pocket",
    "potato",
    "pumpkin",
    "puzzle",
    "rabbit",
    "radio",
    "rocket",
    "saddle",
    "salmon",
    "sandal",
    "shovel",
    "silver",
    "spider",
    "sugar",
    "sunset",
    "tiger",
    "tomato",
    "tractor",
    "trumpet",
    "tunnel",
    "turkey",
    "turtle",
    "umbrella",
    "valley",
    "velvet",
    "violin",
    "walnut",
    "wagon",
    "window",
    "winter",
    "zebra",
    "anchor",
    "bamboo",
    "biscuit",
    "cabin",
    "cactus",
    "carrot",
    "cattle",
    "cement",
    "cobweb",
    "donkey",
    "dinner",
    "ginger",
    "goblin",
    "gravel",
    "hazel",
    "igloo",
    "kayak",
    "koala",
    "lantern",
    "lettuce",
    "llama",
    "lumber",
    "maple",
    "meteor",
    "nickel",
    "oven",
    "pebble",
    "penguin",
    "pirate",
    "plastic",
    "pretzel",
    "raccoon",
    "ribbon",
    "robot",
    "sailor",
    "sausage",
    "scissors",
    "sofa",
    "spinach",
    "squirrel",
    "statue",
    "thunder",
    "tulip",
    "vanilla",
    "walrus",
    "whistle",
    "wizard",
    "yogurt",
    "avocado",
    "buffalo",
    "calendar",
    "cinnamon",
    "crocodile",
    "dinosaur",
    "elephant",
    "envelope",
    "galaxy",
    "gorilla",
    "hamburger",
    "kangaroo",
    "microphone",
    "octopus",
    "piano",
    "popcorn",
    "telescope",
    "tornado",
    "volcano",
    "waterfall",
    "blizzard",
    "emerald",
    "diamond",
    "lighthouse",
    "snowflake",
    "strawberry",
    "pineapple",
    "sandwich",
    "chocolate",
    "cucumber",
    "broccoli",
    "harmonica",
    "saxophone",
    "iceberg",
    "satellite",
    "marathon",
    "balloon",
    "cowboy",
    "horizon",
]

# From ``--measure`` (one round, 14 readings of each of the 134 words; 153 of 1904 readings went
# wrong): missed or heard in another word's place 3 times or more. Added: the words the recognizer
# heard instead of the right one in the genuine trials of the consent benchmark at 2aad197
# (vanilla -> window, candle; cowboy -> cobweb; lemon -> walnut; chocolate -> pillow; kayak -> planet).
CONFUSED: frozenset[str] = frozenset(
    [
        "anchor",
        "apple",
        "bottle",
        "broccoli",
        "buffalo",
        "butter",
        "cherry",
        "compass",
        "copper",
        "cucumber",
        "diamond",
        "dolphin",
        "emerald",
        "engine",
        "envelope",
        "feather",
        "fountain",
        "garden",
        "goblin",
        "gorilla",
        "gravel",
        "hamburger",
        "hammer",
        "hazel",
        "igloo",
        "lemon",
        "lumber",
        "muffin",
        "napkin",
        "olive",
        "orchid",
        "pickle",
        "pillow",
        "popcorn",
        "pumpkin",
        "rocket",
        "tractor",
        "trumpet",
        "tulip",
        "umbrella",
        "violin",
        "candle",
        "cobweb",
        "planet",
        "walnut",
        "window",
    ]
)
MIN_PHONE_DISTANCE = 3
DECOY_COUNT = 400
OUT = Path(__file__).resolve().parents[2] / "policy" / "consent"


def _all_pronunciations() -> dict[str, list[tuple[str, ...]]]:
    import pocketsphinx

    path = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
    words: dict[str, list[tuple[str, ...]]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        word, *phones = line.split()
        words.setdefault(word.split("(")[0], []).append(tuple(phones))
    return words


def _edit_distance(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def vocabulary() -> list[str]:
    prons = _all_pronunciations()
    known = sorted(w for w in set(CANDIDATES) if w in prons)
    known.sort(key=lambda w: (len(prons[w]) > 1, -min(len(p) for p in prons[w]), w))
    kept: list[str] = []
    for word in known:
        if all(
            min(_edit_distance(x, y) for x, y in itertools.product(prons[word], prons[other])) >= MIN_PHONE_DISTANCE
            for other in kept
        ):
            kept.append(word)
    return sorted(set(kept) - CONFUSED)


def _write_arpa(path: str) -> None:
    import pocketsphinx
    from pocketsphinx import Config, LogMath, NGramModel

    model = NGramModel(Config(), LogMath(), os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us.lm.bin"))
    model.write(path, model.str_to_type("arpa"))


def decoys() -> list[str]:
    import multiprocessing

    dictionary = pronunciation_dictionary()
    with tempfile.TemporaryDirectory() as folder:
        arpa = Path(folder) / "lm.arpa"
        # pocketsphinx 5 segfaults partway through writing the bigrams of this model; the unigram
        # section, all this needs, is complete by then, so the write runs in a child process.
        child = multiprocessing.get_context("spawn").Process(target=_write_arpa, args=(str(arpa),))
        child.start()
        child.join()
        unigrams, inside, complete = [], False, False
        for line in arpa.open(encoding="utf-8", errors="replace"):
            if line.startswith("\\1-grams"):
                inside = True
            elif line.startswith("\\2-grams"):
                complete = True
                break
            elif inside and len(parts := line.split()) >= 2:
                unigrams.append((float(parts[0]), parts[1]))
    if not complete:
        raise SystemExit("the language model's unigram section could not be read")
    unigrams.sort(reverse=True)
    return sorted([w for _, w in unigrams if w.isalpha() and w in dictionary][:DECOY_COUNT])


def measure(rounds: int, only: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Per word: readings, times missed (another word heard in its place), times heard in place of another."""
    import numpy as np

    from bench.consent.run import add_noise
    from bench.consent.voices import espeak_voice, festival_voice, piper_voice
    from policy.consent.asr import default_recognizer
    from policy.consent.statement_check import score_statement
    from policy.consent.statement_text import Statement, phrase_vocabulary

    recognizer = default_recognizer()
    rng = np.random.default_rng(20261124)
    voices = (
        [piper_voice(s) for s in (0.9, 1.0, 1.15)]
        + [festival_voice()]
        + [espeak_voice(v) for v in ("en-us", "en-gb", "en-us+m3")]
    )
    voices = [v for v in voices if not only or v.name in only]
    words = list(phrase_vocabulary())
    counts = {w: {"read": 0, "missed": 0, "intruded": 0} for w in words}
    anchor = ("my", "confirmation", "words", "are")
    take = 1000
    for _ in range(rounds):
        for voice in voices:
            order = list(rng.permutation(words))
            order += list(rng.choice(words, size=-len(order) % 4, replace=False))
            for i in range(0, len(order), 4):
                phrase = tuple(str(w) for w in order[i : i + 4])
                statement = Statement(
                    text="", words=anchor + phrase, phrase=phrase, phrase_start=len(anchor), anchor_words=anchor
                )
                take += 1
                audio, rate = voice.speak(f"My confirmation words are {' '.join(phrase)}.", take=take)
                for sample in (audio, add_noise(audio, snr_db=20.0, rng=rng)):
                    heard = score_statement(
                        audio=sample, sample_rate=rate, statement=statement, recognizer=recognizer
                    ).phrase_heard
                    for position, word in enumerate(phrase):
                        counts[word]["read"] += 1
                        other = heard[position] if position < len(heard) and len(heard) == len(phrase) else None
                        if other != word:
                            counts[word]["missed"] += 1
                            if other in counts:
                                counts[other]["intruded"] += 1
            print(f"{voice.name} done", flush=True)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description="rebuild the consent phrase vocabulary and decoy list")
    parser.add_argument("--write", action="store_true", help="overwrite the files instead of comparing")
    parser.add_argument("--measure", action="store_true", help="count the recognizer's confusions per vocabulary word")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--voices", nargs="*", help="measure with these voices only (names as in the benchmark)")
    args = parser.parse_args()
    if args.measure:
        import json

        counts = measure(args.rounds, args.voices)
        bad = sorted(w for w, c in counts.items() if c["missed"] + c["intruded"] >= 2)
        print(json.dumps({"counts": counts, "confused": bad}))
        return
    for name, words in (("vocabulary.txt", vocabulary()), ("decoy_words.txt", decoys())):
        path = OUT / name
        text = "\n".join(words) + "\n"
        if args.write:
            path.write_text(text)
        stored = set(path.read_text().split())
        # Unigrams tied in probability at the cut-off can swap between runs: report the difference.
        note = (
            "written"
            if args.write
            else f"stored list differs by +{sorted(set(words) - stored)} -{sorted(stored - set(words))}"
        )
        print(f"{name}: {len(words)} words, {note}", flush=True)


if __name__ == "__main__":
    main()
