"""DeviceArray interop on a GPU: DLPack and __cuda_array_interface__ ordered against the consumer's stream."""
import numpy as np
import pytest

import ramh_rt
from ramh_rt import _core

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("torch has no CUDA here", allow_module_level=True)


def test_cuda_array_interface_names_the_core_stream():
    x = ramh_rt.DeviceArray.from_host(np.arange(12, dtype=np.float32))
    cai = x.__cuda_array_interface__
    assert cai["version"] == 3 and cai["stream"] == _core.stream_handle(0)
    assert cai["data"][0] == x.ptr and cai["shape"] == (12,)


def test_dlpack_stream_argument():
    x = ramh_rt.DeviceArray.from_host(np.arange(6, dtype=np.float32))
    with pytest.raises(ValueError, match="stream=0 is ambiguous"):
        x.__dlpack__(stream=0)
    with pytest.raises(ValueError, match="stream must be"):
        x.__dlpack__(stream=-7)
    for s in (None, -1, 1, 2):
        torch.utils.dlpack.from_dlpack(x.__dlpack__(stream=s))
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        t = torch.from_dlpack(x)  # passes its current stream
        np.testing.assert_array_equal((t * 2).cpu().numpy(), np.arange(6) * 2)


def test_block_is_not_reused_while_a_dlpack_consumer_still_reads_it():
    """Drop the last references while the consumer's kernels are still queued: the pool must not hand the block to
    the next allocation (which would overwrite it) before those kernels ran."""
    n = 1 << 22
    a = np.arange(n, dtype=np.float32)
    x = ramh_rt.DeviceArray.from_host(a)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        t = torch.from_dlpack(x)
        torch.cuda._sleep(200_000_000)  # keep the side stream busy (~0.1 s) before it reads t
        y = t.clone()
    del t, x  # the deleter runs now: the core stream must wait for `side`
    z = ramh_rt.DeviceArray.from_host(np.full(n, -1.0, np.float32))  # same size: the pool's first candidate block
    side.synchronize()
    np.testing.assert_array_equal(y.cpu().numpy(), a)
    assert z.to_host()[0] == -1.0


def test_core_pool_counts_its_own_blocks_and_trims():
    _core.trim_pool(0)
    base = _core.pool_stats(0)["reserved_bytes"]
    x = ramh_rt.DeviceArray.empty([1 << 24], "uint8")
    st = _core.pool_stats(0)
    assert st["used_bytes"] >= x.nbytes and st["reserved_bytes"] >= base + x.nbytes
    # memory torch takes from its own allocator is not counted as the core's
    t = torch.empty(1 << 24, dtype=torch.uint8, device="cuda")
    assert _core.pool_stats(0)["reserved_bytes"] == st["reserved_bytes"]
    del x, t
    _core.trim_pool(0)
    assert _core.pool_stats(0)["used_bytes"] == 0 and _core.pool_stats(0)["reserved_bytes"] <= base


def test_reshape_is_a_view_of_the_same_block():
    a = np.arange(24, dtype=np.float32)
    x = ramh_rt.DeviceArray.from_host(a)
    y = x.reshape((2, 3, 4))
    assert isinstance(y, ramh_rt.DeviceArray) and y.shape == (2, 3, 4) and y.ptr == x.ptr and y.dtype == x.dtype
    assert y.__cuda_array_interface__["shape"] == (2, 3, 4)
    assert x.reshape([4, -1]).shape == (4, 6) and x.reshape(24).shape == (24,)
    np.testing.assert_array_equal(y.to_host(), a.reshape(2, 3, 4))
    # torch sees the new shape over the same memory; the view keeps the block alive once the original is gone
    del x
    t = torch.from_dlpack(y)
    assert tuple(t.shape) == (2, 3, 4)
    _ = ramh_rt.DeviceArray.from_host(np.full(24, -1.0, np.float32))  # would take the block if it had been freed
    np.testing.assert_array_equal(t.cpu().numpy(), a.reshape(2, 3, 4))


@pytest.mark.parametrize("shape, match", [((5, 5), r"\(24,\).*24 elements.*\(5, 5\)"), ((-1, -1), "at most one"),
                                          ((2, -3), ">= 0"), ((0, -1), "cannot view"), (("a", 2), "ints")])
def test_reshape_names_a_shape_that_does_not_fit(shape, match):
    x = ramh_rt.DeviceArray.from_host(np.zeros(24, np.float32))
    with pytest.raises(ValueError, match=match):
        x.reshape(shape)
