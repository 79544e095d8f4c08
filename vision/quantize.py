"""Try int8 static (QDQ) quantisation of the counter; keep it only if faster and as accurate.

    python -m vision.quantize --model models/item_counter.onnx   # train venv (+ onnxruntime)

Calibration and the accuracy comparison use the validation design family (train family, fresh
seeds), never the evaluation sets. Prints both latencies and accuracies and a verdict; writes
the int8 file next to the model only with --keep.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from simulators.camera import dataset_scene
from vision.config import CounterDetectorConfig
from vision.detectors import CounterDetector

CALIB_SEED, CHECK_SEED = 707, 808


class _Reader(CalibrationDataReader):
    def __init__(self, detector: CounterDetector, n: int) -> None:
        self.items = iter(
            detector.preprocess(dataset_scene(CALIB_SEED, i, width=512, height=384)[0])[0]
            for i in range(n)
        )

    def get_next(self):  # type: ignore[no-untyped-def]
        tensor = next(self.items, None)
        return None if tensor is None else {"images": tensor}


def measure(path: Path, n: int) -> tuple[float, float]:
    det = CounterDetector(CounterDetectorConfig(type="counter", model=path, threads=2))
    exact = 0
    for i in range(n):
        image, truth = dataset_scene(CHECK_SEED, i, width=512, height=384, hand_rate=0)
        result = det.detect(image)
        exact += result.readable and result.count == truth.count
    tensor = det.preprocess(dataset_scene(CHECK_SEED, 0, width=512, height=384)[0])[0]
    times = []
    for _ in range(200):
        started = time.perf_counter()
        det.run(tensor)
        times.append((time.perf_counter() - started) * 1000)
    return exact / n, statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, default=Path("models/item_counter.onnx"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    fp32 = CounterDetector(CounterDetectorConfig(type="counter", model=args.model, threads=1))
    pre = args.model.with_suffix(".pre.onnx")
    out = args.model.with_name(args.model.stem + ".int8.onnx")
    quant_pre_process(str(args.model), str(pre))
    quantize_static(
        str(pre), str(out), _Reader(fp32, 100), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
        nodes_to_exclude=[],
    )  # fmt: skip
    pre.unlink()
    acc32, ms32 = measure(args.model, args.n)
    acc8, ms8 = measure(out, args.n)
    keep = ms8 < ms32 and acc8 >= acc32
    print(f"fp32: exact {acc32:.3f}, median {ms32:.2f} ms")
    print(f"int8: exact {acc8:.3f}, median {ms8:.2f} ms")
    print("keep int8" if keep else "keep fp32")
    if not (keep and args.keep):
        out.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
