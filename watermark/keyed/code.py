"""Rate-1/2 convolutional code (constraint length 7, the 133/171 octal pair) with soft Viterbi decoding.

The payload is short (64 bits) and read from a few seconds of degraded audio, so every coded
bit arrives as a soft value (a correlation sum); soft decoding gains about 2 dB over hard decisions.
"""

from __future__ import annotations

import numpy as np

CONSTRAINT = 7
_POLYS = (0o133, 0o171)
_STATES = 1 << (CONSTRAINT - 1)


def _parity(value: np.ndarray) -> np.ndarray:
    value = value.copy()
    result = np.zeros_like(value)
    while np.any(value):
        result ^= value & 1
        value >>= 1
    return result


# For each state and input bit: next state and the two output bits.
_state = np.arange(_STATES)
_NEXT = np.empty((_STATES, 2), dtype=np.int64)
_OUT = np.empty((_STATES, 2, 2), dtype=np.int8)
for _bit in (0, 1):
    _reg = (_bit << (CONSTRAINT - 1)) | _state  # newest bit in the top position
    _NEXT[:, _bit] = _reg >> 1
    for _j, _poly in enumerate(_POLYS):
        _OUT[:, _bit, _j] = _parity(_reg & _poly)


def coded_length(n_bits: int) -> int:
    return 2 * (n_bits + CONSTRAINT - 1)


def encode(bits: np.ndarray) -> np.ndarray:
    """Encode 0/1 bits, terminated with CONSTRAINT-1 zero tail bits; returns 0/1 coded bits."""
    bits = np.concatenate([np.asarray(bits, dtype=np.int64), np.zeros(CONSTRAINT - 1, dtype=np.int64)])
    state = 0
    out = np.empty(2 * bits.size, dtype=np.int8)
    for i, bit in enumerate(bits):
        out[2 * i : 2 * i + 2] = _OUT[state, bit]
        state = _NEXT[state, bit]
    return out


def encode_many(bits: np.ndarray) -> np.ndarray:
    """``encode`` of every row of (N, n_bits) 0/1 bits at once; returns (N, coded_length) 0/1."""
    bits = np.asarray(bits, dtype=np.uint8)
    n, n_bits = bits.shape
    steps = n_bits + CONSTRAINT - 1
    padded = np.zeros((n, steps + CONSTRAINT - 1), dtype=np.uint8)  # CONSTRAINT-1 zero bits before the first
    padded[:, CONSTRAINT - 1 : CONSTRAINT - 1 + n_bits] = bits
    out = np.zeros((n, steps, 2), dtype=np.uint8)
    for j, poly in enumerate(_POLYS):
        for delay in range(CONSTRAINT):  # register bit CONSTRAINT-1-delay holds the input from `delay` steps ago
            if (poly >> (CONSTRAINT - 1 - delay)) & 1:
                out[:, :, j] ^= padded[:, CONSTRAINT - 1 - delay : CONSTRAINT - 1 - delay + steps]
    return out.reshape(n, 2 * steps)


def decode(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """Soft Viterbi: ``soft[i] > 0`` favours coded bit 0, ``< 0`` favours 1, magnitude is confidence."""
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, 2)
    steps = n_bits + CONSTRAINT - 1
    if soft.shape[0] != steps:
        raise ValueError(f"expected {2 * steps} soft values, got {soft.size}")
    signs = 1.0 - 2.0 * _OUT.astype(np.float64)  # (+1 for a 0 bit)
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    back_state = np.empty((steps, _STATES), dtype=np.int64)
    back_bit = np.empty((steps, _STATES), dtype=np.int8)
    for t in range(steps):
        branch = metric[:, None] + signs[:, :, 0] * soft[t, 0] + signs[:, :, 1] * soft[t, 1]  # (state, bit)
        if t >= n_bits:  # tail: only zero inputs
            branch[:, 1] = -np.inf
        new_metric = np.full(_STATES, -np.inf)
        prev = np.zeros(_STATES, dtype=np.int64)
        bit_of = np.zeros(_STATES, dtype=np.int8)
        for bit in (0, 1):
            nxt = _NEXT[:, bit]
            vals = branch[:, bit]
            # each next state is reached from exactly two states per bit value; resolve by order
            order = np.argsort(vals, kind="stable")
            better = vals[order] >= new_metric[nxt[order]]
            sel = order[better]
            new_metric[nxt[sel]] = vals[sel]
            prev[nxt[sel]] = sel
            bit_of[nxt[sel]] = bit
        metric = new_metric
        back_state[t] = prev
        back_bit[t] = bit_of
    state = 0  # terminated code ends in state 0
    bits = np.empty(steps, dtype=np.int8)
    for t in range(steps - 1, -1, -1):
        bits[t] = back_bit[t, state]
        state = back_state[t, state]
    return bits[:n_bits]


def decode_list(soft: np.ndarray, n_bits: int, size: int) -> list[np.ndarray]:
    """Parallel list Viterbi: the ``size`` most likely messages, best first.

    Each state keeps its ``size`` best paths; the authentication tag then tells which, if any,
    is the message (a CRC-aided list decoder). ``decode_list(soft, n, 1)[0]`` equals ``decode``.
    """
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, 2)
    steps = n_bits + CONSTRAINT - 1
    if soft.shape[0] != steps:
        raise ValueError(f"expected {2 * steps} soft values, got {soft.size}")
    signs = 1.0 - 2.0 * _OUT.astype(np.float64)
    metric = np.full((_STATES, size), -np.inf)
    metric[0, 0] = 0.0
    # the predecessors of each next state: (state, bit) pairs, two per next state
    preds = [[(s, b) for s in range(_STATES) for b in (0, 1) if _NEXT[s, b] == n] for n in range(_STATES)]
    pred_state = np.array([[p[0] for p in ps] for ps in preds])  # (next, 2)
    pred_bit = np.array([[p[1] for p in ps] for ps in preds])
    back = np.empty((steps, _STATES, size, 3), dtype=np.int64)  # (previous state, previous rank, bit)
    for t in range(steps):
        branch = signs[:, :, 0] * soft[t, 0] + signs[:, :, 1] * soft[t, 1]  # (state, bit)
        # candidates for each next state: 2 predecessors x size ranks
        cand = metric[pred_state] + branch[pred_state, pred_bit][:, :, None]  # (next, 2, size)
        if t >= n_bits:
            cand = np.where((pred_bit == 1)[:, :, None], -np.inf, cand)
        flat = cand.reshape(_STATES, -1)
        order = np.argsort(-flat, axis=1, kind="stable")[:, :size]
        metric = np.take_along_axis(flat, order, axis=1)
        which = order // size
        back[t, :, :, 0] = np.take_along_axis(pred_state, which, axis=1)
        back[t, :, :, 1] = order % size
        back[t, :, :, 2] = np.take_along_axis(pred_bit, which, axis=1)
    messages = []
    for r in range(size):
        if not np.isfinite(metric[0, r]):
            break
        state, path = 0, r
        bits = np.empty(steps, dtype=np.int8)
        for t in range(steps - 1, -1, -1):
            prev_state, prev_path, bit = back[t, state, path]
            bits[t] = bit
            state, path = int(prev_state), int(prev_path)
        messages.append(bits[:n_bits])
    return messages
