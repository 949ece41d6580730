"""What `POST /v1/detect` answers: each layer's finding, the verdict in words, the payload's source."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gateway.shared.schemas import ResponseModel


class SchemeFinding(ResponseModel):
    """One watermark layer's finding (watermark/detection.py `Detection.as_json`)."""

    name: str
    detected: bool
    score: float
    false_positive_probability: float | None = Field(description="null: this layer has no computed bound")
    payload: str | None = Field(description="the decoded payload in hex")
    payload_verified: bool
    segments: list[list[float]] = Field(description="marked segments as [start s, end s, score]")
    warp: dict[str, float | str] | None = Field(default=None, description="keyed: the warp undone by the alignment")
    payload_source: Literal["decoded", "attributed"] | None = None
    false_attribution_probability: float | None = None
    empirical_false_positive_rate: dict[str, float] | None = None


class Verdict(ResponseModel):
    detected: bool
    basis: list[str] = Field(description="the layers the verdict rests on: those with a computed bound")
    statement: str
    not_evidence_of_human_origin: str
    also_check: list[str]


class InclusionProof(ResponseModel):
    tree_size: int
    leaf_hash: str
    proof: list[str]
    checkpoint: str


class PayloadSource(ResponseModel):
    """The request a payload names, as far as this caller may know it."""

    status: Literal["unknown", "withheld", "resolved"]
    audit_id: int | None = None
    detail: str | None = None
    event: dict[str, Any] | None = Field(default=None, description="the audit event that admitted the request")
    leaf_index: int | None = None
    inclusion_proof: InclusionProof | None = None


class DetectionAnswer(ResponseModel):
    detected: bool
    verdict_basis: list[str]
    schemes: list[SchemeFinding]
    verdict: Verdict
    duration_seconds: float
    source: PayloadSource | None
