"""The keyed frame layout: which (block, band pair) cell carries sync and which a coded payload bit.

One frame is FRAME_BLOCKS blocks (about 2 s) by N_PAIRS band pairs and repeats for the whole
output, so any excerpt of one frame length contains every cell at least once (a 3 s excerpt,
with room for a time-scale change, always does). Sync cells have a keyed sign and make the
presence statistic; payload cells carry coded bits, each spread over several cells with keyed signs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import code
from .features import N_PAIRS
from .keys import MESSAGE_BITS, keyed_permutation, keyed_signs

FRAME_BLOCKS = 64
CODED_BITS = code.coded_length(MESSAGE_BITS)
CELLS_PER_CODED_BIT = 4
PAYLOAD_CELLS = CODED_BITS * CELLS_PER_CODED_BIT
SYNC = -1


@dataclass(frozen=True)
class Layout:
    signs: npt.NDArray[np.float64]  # (FRAME_BLOCKS, N_PAIRS) of +-1
    role: npt.NDArray[np.int64]  # (FRAME_BLOCKS, N_PAIRS): SYNC or the index of the coded bit

    @property
    def sync_mask(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.role == SYNC, dtype=np.float64)

    def targets(self, coded_bits: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
        """Desired sign of each cell for a message: sync cells keep their sign, payload cells flip on a 1."""
        flip = np.ones_like(self.signs)
        payload = self.role != SYNC
        flip[payload] = 1.0 - 2.0 * np.asarray(coded_bits)[self.role[payload]]
        return np.asarray(self.signs * flip, dtype=np.float64)


def build_layout(key: bytes) -> Layout:
    n_cells = FRAME_BLOCKS * N_PAIRS
    if n_cells <= PAYLOAD_CELLS:
        raise ValueError("the frame has no room left for sync cells")
    order = keyed_permutation(key, "layout", n_cells)
    role = np.full(n_cells, SYNC, dtype=np.int64)
    role[order[:PAYLOAD_CELLS]] = np.arange(PAYLOAD_CELLS) % CODED_BITS
    return Layout(
        signs=keyed_signs(key, "cell-signs", (FRAME_BLOCKS, N_PAIRS)),
        role=role.reshape(FRAME_BLOCKS, N_PAIRS),
    )
