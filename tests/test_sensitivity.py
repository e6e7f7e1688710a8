"""How small an error the verdict catches on the reference BatchNorm, and that the correct layer
still passes at the same settings (issue 10: full mode flags 1e-10, directional 1e-9)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gradcheck import BatchNorm, check_layer


class _Wrong:
    """The reference BatchNorm with ``dx`` multiplied by ``1 + delta`` where ``mask`` is set."""

    def __init__(self, channels: int, delta: float, mask: np.ndarray | None = None) -> None:
        self.bn, self.delta, self.mask = BatchNorm(channels), delta, mask
        self.name = "batchnorm-with-a-wrong-dx"

    def parameters(self) -> dict[str, np.ndarray]:
        return self.bn.parameters()

    def forward(self, inputs):  # type: ignore[no-untyped-def]
        return self.bn.forward(inputs)

    def backward(self, dout, cache):  # type: ignore[no-untyped-def]
        grads = dict(self.bn.backward(dout, cache))
        factor = 1 + self.delta if self.mask is None else np.where(self.mask, 1 + self.delta, 1)
        grads["x"] = grads["x"] * factor
        return grads


def _x(n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng([n, d])
    return rng.normal(2.0, 3.0, size=(n, d))


def _status(layer, x: np.ndarray, mode: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return check_layer(layer, {"x": x}, mode=mode, wrt="x").results[0].status


@pytest.mark.parametrize(
    ("shape", "mode", "delta"),
    [
        pytest.param((64, 32), "full", 1e-10, id="64x32-full-1e-10"),
        pytest.param((256, 64), "full", 1e-10, id="256x64-full-1e-10"),
        pytest.param((64, 32), "directional", 1e-9, id="64x32-directional-1e-9"),
        pytest.param((256, 64), "directional", 1e-9, id="256x64-directional-1e-9"),
    ],
)
def test_small_uniform_error_is_flagged_and_the_correct_layer_passes(shape, mode, delta):
    x = _x(*shape)
    assert _status(_Wrong(shape[1], 0.0), x, mode) == "pass"
    assert _status(_Wrong(shape[1], delta), x, mode) == "fail"


def _channel_scaled(n: int = 64) -> tuple[np.ndarray, int]:
    """Seven channels with spreads 1e-3 .. 1e3: BatchNorm's dx scales like 1/spread, so the
    widest channel has the smallest gradient (a million times below the narrowest)."""
    spreads = 10.0 ** np.arange(-3, 4)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, spreads.size)) * spreads + rng.normal(size=spreads.size)
    return x, int(np.argmax(spreads))


@pytest.mark.parametrize("mode", ["full", "directional"])
def test_error_confined_to_the_smallest_channel_is_flagged(mode):
    x, smallest = _channel_scaled()
    mask = np.zeros(x.shape, dtype=bool)
    mask[:, smallest] = True
    assert _status(_Wrong(x.shape[1], 0.0), x, mode) == "pass"
    assert _status(_Wrong(x.shape[1], 1e-3, mask), x, mode) == "fail"


def test_detectable_is_stated_and_near_the_float64_limit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = check_layer(BatchNorm(32), {"x": _x(64, 32)}, mode="full")
    for result in report.results:
        assert 0 < result.detectable < 1e-11, (result.name, result.detectable)
