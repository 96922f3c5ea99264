"""
ramh_rt C++/CUDA core: preprocessing, mask postprocessing, ROI crop/paste and erosion quantification.
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.dtypes
import numpy.typing
import typing
import typing_extensions
__all__: list[str] = ['DeviceArray', 'EROSION_DTYPE', 'INSTANCE_DTYPE', 'build_info', 'crop_rois', 'cuda_available', 'cuda_compiled', 'cuda_device_count', 'device_of_pointer', 'device_properties', 'letterbox_geometry', 'paste_rois', 'pool_stats', 'postprocess_masks', 'preprocess', 'quantify_erosions', 'stream_handle', 'synchronize', 'to_host', 'trim_pool']
class DeviceArray:
    """
    A dense CUDA array owned by the ramh_rt core (pooled device memory).
    
    Produced by the ops when given device input; readable by CuPy (``cupy.asarray``), PyTorch (``torch.from_dlpack``),
    ONNX Runtime IO binding and TensorRT by pointer through ``__cuda_array_interface__`` (v3) and ``__dlpack__``.
    The memory returns to the core's pool when the last reference (including DLPack consumers) is gone. DLPack
    consumers that pass their stream (``torch.from_dlpack`` and CuPy do) are ordered both ways: their work starts after
    the core's and the block is reused only after theirs. Through ``__cuda_array_interface__`` the consumer is told the
    core's stream to wait on, but that interface has no release protocol: finish (synchronise) the work reading the array
    before dropping the last reference to it.
    """
    @staticmethod
    def empty(shape: collections.abc.Sequence, dtype: typing.Any = None, device: typing.SupportsInt | typing.SupportsIndex = 0) -> DeviceArray:
        """
        Uninitialised device array of the given shape and dtype (uint8, uint16, int32, int64, float16, float32).
        """
    @staticmethod
    def from_host(array: typing.Any, device: typing.SupportsInt | typing.SupportsIndex = 0) -> DeviceArray:
        """
        Copy a NumPy array to the device.
        """
    def __dlpack__(self, stream: typing.Any = None, max_version: typing.Any = None, dl_device: typing.Any = None, copy: typing.Any = None) -> typing_extensions.CapsuleType:
        ...
    def __dlpack_device__(self) -> tuple[int, int]:
        ...
    def __repr__(self) -> str:
        ...
    def reshape(self, shape: typing.Any) -> DeviceArray:
        """
        A view of the same device memory with another shape (no copy; both arrays keep the block alive). ``shape`` is an int
        or a sequence of ints; one size may be -1 (inferred). Raises ValueError, naming both shapes, when the element count
        differs (or a size is below -1, or more than one is -1).
        """
    def to_host(self) -> numpy.ndarray:
        """
        Copy to a new NumPy array (waits for the work that produced this array).
        """
    @property
    def __cuda_array_interface__(self) -> dict:
        ...
    @property
    def device(self) -> int:
        ...
    @property
    def dtype(self) -> numpy.dtype[typing.Any]:
        ...
    @property
    def nbytes(self) -> int:
        ...
    @property
    def ndim(self) -> int:
        ...
    @property
    def ptr(self) -> int:
        ...
    @property
    def shape(self) -> tuple:
        ...
def build_info() -> dict:
    """
    What this build of the core contains: version, CUDA (and for which architectures), compilers, OpenMP.
    """
def crop_rois(image: typing.Any, boxes: typing.Any, out_h: typing.SupportsInt | typing.SupportsIndex, out_w: typing.SupportsInt | typing.SupportsIndex, interpolation: str, fill: typing.SupportsFloat | typing.SupportsIndex) -> typing.Any:
    """
    Crop oriented ROIs; see ramh_rt.ops.crop_rois.
    """
def cuda_available() -> bool:
    """
    True when CUDA kernels are compiled in and a CUDA device can be used on this machine.
    """
def cuda_compiled() -> bool:
    """
    True when this build of ramh_rt contains CUDA kernels.
    """
def cuda_device_count() -> int:
    """
    Number of visible CUDA devices (0 without CUDA).
    """
def device_of_pointer(ptr: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    The CUDA device holding the memory at `ptr`, or -1 for host memory (or a build without CUDA).
    """
def device_properties(device: typing.SupportsInt | typing.SupportsIndex = 0) -> dict:
    """
    Name, compute capability, memory and SM count of a CUDA device.
    """
def letterbox_geometry(in_h: typing.SupportsInt | typing.SupportsIndex, in_w: typing.SupportsInt | typing.SupportsIndex, out_h: typing.SupportsInt | typing.SupportsIndex, out_w: typing.SupportsInt | typing.SupportsIndex) -> dict:
    """
    Letterbox placement of an in_h x in_w image on an out_h x out_w canvas (see ramh_rt.ops.preprocess).
    """
def paste_rois(rois: typing.Any, boxes: typing.Any, out_h: typing.SupportsInt | typing.SupportsIndex, out_w: typing.SupportsInt | typing.SupportsIndex, reduce: str, fill: typing.SupportsFloat | typing.SupportsIndex) -> typing.Any:
    """
    Paste ROI maps back into an image; see ramh_rt.ops.paste_rois.
    """
def pool_stats(device: typing.SupportsInt | typing.SupportsIndex = 0) -> dict:
    """
    Bytes held by the core's device pool and pinned host cache.
    """
def postprocess_masks(logits: typing.Any, mode: typing.SupportsInt | typing.SupportsIndex, thresholds: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], keep: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], min_area: typing.SupportsInt | typing.SupportsIndex, fill_holes: bool) -> tuple[typing.Any, numpy.typing.NDArray[numpy.void]]:
    """
    Low-level entry of ramh_rt.ops.postprocess_masks: mode 0 multilabel / 1 multiclass, thresholds (1 or C floats), keep (1 or C codes: 0 largest, 1 all). Returns (masks, instance table).
    """
def preprocess(image: typing.Any, out_h: typing.SupportsInt | typing.SupportsIndex, out_w: typing.SupportsInt | typing.SupportsIndex, window: typing.Any, dtype: typing.Any, percentile_lo: typing.SupportsFloat | typing.SupportsIndex, percentile_hi: typing.SupportsFloat | typing.SupportsIndex, mean: typing.SupportsFloat | typing.SupportsIndex, std: typing.SupportsFloat | typing.SupportsIndex, pad_value: typing.SupportsFloat | typing.SupportsIndex | None, antialias: bool) -> tuple[typing.Any, numpy.ndarray]:
    """
    Window, normalise and letterbox-resize a batch of images; returns (N x 1 x out_h x out_w array, N x 2 windows). See ramh_rt.ops.preprocess.
    """
def quantify_erosions(erosion: typing.Any, bone_masks: typing.Any, boxes: typing.Any, spacing_mm: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], threshold: typing.SupportsFloat | typing.SupportsIndex, min_lesion_px: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.void]:
    """
    Low-level entry of ramh_rt.ops.quantify_erosions (spacing_mm: one value per ROI, NaN = unknown). Returns the erosion table.
    """
def stream_handle(device: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    """
    The core's CUDA stream (cudaStream_t) of a device as an integer, for engines that enqueue work by handle (TensorRT execute_async_v3, ONNX Runtime user_compute_stream). Raises RuntimeError without CUDA.
    """
def synchronize(device: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Wait for all work queued on the core's stream of a device.
    """
def to_host(array: typing.Any) -> numpy.ndarray:
    """
    Copy any C-contiguous CUDA array (DeviceArray, CuPy, PyTorch, __cuda_array_interface__) to a new NumPy array.
    """
def trim_pool(device: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Give cached device and pinned memory back to the driver.
    """
EROSION_DTYPE: numpy.dtypes.VoidDType
INSTANCE_DTYPE: numpy.dtypes.VoidDType
