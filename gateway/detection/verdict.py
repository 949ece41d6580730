"""What a detection answer says, in words, beside the scores: the same for the API, the CLI and
the console (which shows the API's answer).

The verdict rests only on layers with a computed false-positive bound (the keyed mark); a layer
without one (PerTh) is reported beside it with its measured false-positive rate. Every answer
says what a negative does and does not mean, and where else to look.
"""

from __future__ import annotations

from typing import Any

from watermark import StackDetection

NOT_EVIDENCE_OF_HUMAN_ORIGIN = (
    "No mark found is not evidence that a person recorded this audio: it may come from another "
    "generator, or its mark may have been destroyed by heavy processing or re-synthesis."
)
ALSO_CHECK = (
    "a C2PA manifest (Content Credentials) embedded in the file: clonegate signs one into every WAV, "
    "FLAC and MP3 it releases, naming the watermark id",
    "the clonegate audit log: an auditor can look up released outputs by time, voice and the sha256 of the "
    "exact file (every release is recorded with its output hash)",
)


def verdict(found: StackDetection) -> dict[str, Any]:
    """The verdict block of a detection answer."""
    keyed = next((d for d in found.schemes if d.scheme == "keyed"), None)
    if found.detected and keyed is not None and keyed.payload is not None:
        how = "decoded and authenticated" if keyed.payload_verified else "matched among released outputs"
        statement = (
            f"clonegate's mark is present (false-positive probability at most "
            f"{keyed.false_positive_probability:.2g}) and names the request that made it ({how})."
        )
    elif found.detected:
        statement = (
            "clonegate's mark is present (false-positive probability at most "
            f"{min(d.false_positive_probability or 1.0 for d in found.schemes):.2g}), but too little of it "
            "survives to name the request."
        )
    else:
        statement = "No clonegate mark was found at the detector's false-positive threshold."
    unbounded = [d.scheme for d in found.schemes if d.false_positive_probability is None and d.detected]
    if unbounded:
        statement += (
            f" {', '.join(unbounded)} reports a mark of its own; that layer has no computed false-positive "
            "bound (see its measured rate) and does not count toward the verdict."
        )
    return {
        "detected": found.detected,
        "basis": list(found.basis),
        "statement": statement,
        "not_evidence_of_human_origin": NOT_EVIDENCE_OF_HUMAN_ORIGIN,
        "also_check": list(ALSO_CHECK),
    }
