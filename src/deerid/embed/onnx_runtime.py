"""Run a backbone embedder's network + head on ONNX Runtime instead of eager PyTorch: the
default on the CPU (`DEERID_RUNTIME=auto`; `onnx` insists, `torch` opts out).

Eager PyTorch runs EfficientNet-Lite's depthwise convolutions far below what a CPU
can do; ONNX Runtime fuses conv + batch norm + ReLU6 and runs the same network
several times faster (docs/scale.md, "Inference runtime").

The exported graph is the exact function `Embedder._forward` runs (backbone
`forward_features`, then the saved head: GeM, projection, L2-normalise), fed the
same preprocessed batches (`BatchedEmbedder`). TF 'SAME' padding is exported as
constant asymmetric `pads` of each Conv (the input size is fixed per model), so
every convolution runs in ONNX Runtime's fused kernels. It is exported once per
model to `models_dir/<model_id>/model.onnx` and reused. Before a freshly exported
file is used its vectors are compared with PyTorch's on a fixed input: they must
agree within `PARITY_TOLERANCE` (max abs), which is why it keeps the PyTorch model
id and the two runtimes' vectors may sit in one database. A file that fails that
check is never used.

Only the published backbones go through here; trained models (`deerid.embed.trained`)
stay on PyTorch.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deerid.core.files import sha256_file
from deerid.embed.preprocess import BatchedEmbedder
from deerid.errors import Unavailable

if TYPE_CHECKING:
    from deerid.embed.backbones import Backbone

ONNX_FILE = "model.onnx"
RECORD_FILE = "model.onnx.json"
PARITY_TOLERANCE = 1e-4
"""Most absolute difference between a PyTorch and an ONNX Runtime vector component."""
OPSET = 17
_INPUT = "pixels"
_OUTPUT = "vectors"
_FORMAT_VERSION = 2
"""2: SAME padding as constant Conv pads (1 traced it into Shape→Pad chains, half as fast)."""


class OnnxRuntimeError(Unavailable):
    """ONNX Runtime is missing, or a model cannot be exported or loaded; the message says which."""


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except (ImportError, OSError) as exc:  # OSError: a wheel whose shared library cannot load
        raise OnnxRuntimeError(
            f"onnxruntime cannot be imported ({exc}); reinstall deerid (onnxruntime and onnx are "
            "dependencies) or set DEERID_RUNTIME=torch"
        ) from exc
    return onnxruntime


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class _Network(nn.Module):
    """Backbone features → head: the function `Embedder._forward` computes, as one module."""

    def __init__(self, network: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.network.forward_features(x))


def _parity_input(input_size: int) -> torch.Tensor:
    """Fixed input for the export check: two seeded random images, already normalised."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, input_size, input_size, generator=gen)


class OnnxEmbedder(BatchedEmbedder):
    """Same contract as `Embedder` (`.model_id`, `.dim`, `.backbone`, `.input_size`, `.batch_size`,
    `.device`, `.weights`, `.embed`), computed by an ONNX Runtime session on the CPU.

    Built from a loaded CPU `Embedder` (its weights and saved head are what gets
    exported); the PyTorch modules are only kept until the session exists.
    """

    runtime = "onnx"

    def __init__(self, embedder: Any, *, models_dir: Path, threads: int | None = None) -> None:
        if embedder.device.type != "cpu":
            raise OnnxRuntimeError(
                f"DEERID_RUNTIME=onnx runs on the CPU, not {embedder.device.type}; set DEVICE=cpu "
                "or DEERID_RUNTIME=torch"
            )
        ort = _import_onnxruntime()
        self.model_id: str = embedder.model_id
        self.backbone: str = embedder.backbone
        self.input_size: int = embedder.input_size
        self.batch_size: int = embedder.batch_size
        self.dim: int = embedder.dim
        self.device = torch.device("cpu")
        self.weights = embedder.weights
        self._spec = embedder._spec
        self.threads = threads or cpu_cores()
        self.path = Path(models_dir) / self.model_id / ONNX_FILE
        module = _Network(embedder._network, embedder._head).eval()
        self.exported = ensure_exported(module, self.path, self.model_id, self.input_size)
        try:
            self._session = _open_session(ort, self.path, self.threads)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise OnnxRuntimeError(
                f"ONNX Runtime {ort.__version__} cannot load {self.path}: {exc}; delete the file to "
                "export it again, or set DEERID_RUNTIME=torch"
            ) from exc
        self._lock = threading.Lock()

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        # One run at a time: the session already spreads one batch over every core.
        x = batch.detach().cpu().contiguous().numpy()
        with self._lock:
            return self._session.run([_OUTPUT], {_INPUT: x})[0].astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"OnnxEmbedder(model_id={self.model_id!r}, threads={self.threads})"


def _open_session(ort: Any, path: Path, threads: int) -> Any:
    """A CPU session; each option was measured in benchmarks/runtime.py (docs/scale.md)."""
    options = ort.SessionOptions()
    # One batch already keeps every core busy in its convolutions; a parallel executor
    # only adds scheduling (measured no faster), so sequential with one intra-op thread per core.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ALL, not EXTENDED: the layout transformer (NCHWc blocked convolutions) only runs at ALL.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _record_ok(path: Path, model_id: str, input_size: int) -> bool:
    """Does `path` hold the export recorded beside it, for this model and input size?"""
    record_path = path.with_name(RECORD_FILE)
    if not (path.is_file() and record_path.is_file()):
        return False
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    return (
        record.get("format") == _FORMAT_VERSION
        and record.get("model_id") == model_id
        and record.get("input_size") == input_size
        and record.get("onnx_sha256") == sha256_file(path)
    )


def ensure_exported(module: nn.Module, path: Path, model_id: str, input_size: int) -> bool:
    """Make sure `path` holds a verified export of `module`; True when it was exported now.

    A cached file is reused when its sha256, model id and input size match the
    record written beside it. A file that does not (truncated, edited, from
    another model or half-written by a crashed export) is derived data, so it is
    exported again from the weights and saved head rather than trusted or
    refused. Both files are written under unique temporary names and renamed
    into place, so concurrent starts never read half a file.
    """
    if _record_ok(path, model_id, input_size):
        return False
    ort = _import_onnxruntime()
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex
    tmp = path.with_name(f".{path.name}.{tag}.tmp")
    tmp_record = path.with_name(f".{RECORD_FILE}.{tag}.tmp")
    try:
        example = _parity_input(input_size)
        with warnings.catch_warnings():
            # The TF 'SAME' padding arithmetic is traced to constants for this input size,
            # which is what we want (the size is fixed per model); silence the tracer's notes.
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    module,
                    (example,),
                    str(tmp),
                    input_names=[_INPUT],
                    output_names=[_OUTPUT],
                    dynamic_axes={_INPUT: {0: "n"}, _OUTPUT: {0: "n"}},
                    opset_version=OPSET,
                    dynamo=False,
                )
            except Exception as exc:
                raise OnnxRuntimeError(f"could not export {model_id} to ONNX: {exc}") from exc
        with torch.inference_mode():
            expected = module(example).numpy()
        try:
            got = _open_session(ort, tmp, 1).run([_OUTPUT], {_INPUT: example.numpy()})[0]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise OnnxRuntimeError(f"ONNX Runtime cannot run the export of {model_id}: {exc}") from exc
        max_abs = float(np.abs(got - expected).max())
        if not max_abs <= PARITY_TOLERANCE:
            raise OnnxRuntimeError(
                f"the ONNX export of {model_id} differs from PyTorch by {max_abs:.2e} (max abs), "
                f"more than {PARITY_TOLERANCE:g}; use DEERID_RUNTIME=torch"
            )
        record = {
            "format": _FORMAT_VERSION,
            "model_id": model_id,
            "input_size": input_size,
            "onnx_sha256": sha256_file(tmp),
            "opset": OPSET,
            "parity_max_abs": max_abs,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
        }
        tmp_record.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        # Model first, then its record: a reader between the two renames sees a mismatch
        # and exports again, never a record that vouches for the wrong file.
        os.replace(tmp, path)
        os.replace(tmp_record, path.with_name(RECORD_FILE))
    finally:
        tmp.unlink(missing_ok=True)
        tmp_record.unlink(missing_ok=True)
    return True
