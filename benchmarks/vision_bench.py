"""Vision benchmark: bare session.run vs the whole per-frame pipeline, and barcode decoding.

    python -m benchmarks.vision_bench [--smoke]

Frames are 640x480 simulator scenes (the overhead camera's stream size the counter is fed);
barcode decoding runs on 1920x1080 frames with an EAN-13 and a GS1 DataMatrix, formats
restricted to the ones a site enables. The pipeline figure covers grab (copy of the newest frame),
resize + normalise, session.run, peak decoding and the count; the ratio is pipeline / bare run,
both with the same session (2 intra-op threads, no spinning).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.figures import Figure, summary
from simulators.camera import InsertionSequence, dataset_scene
from vision.barcodes import BarcodeReader
from vision.config import BarcodeConfig, CounterDetectorConfig
from vision.detectors import CounterDetector
from vision.observe import InsertionAccumulator, Pipeline


def _time(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def run(smoke: bool) -> list[Figure]:
    n = 30 if smoke else 300
    detector = CounterDetector(CounterDetectorConfig(type="counter", threads=2))
    frames = [dataset_scene(606, i, family="holdout", width=640, height=480)[0] for i in range(8)]
    w, h = detector.info.input_size
    tensor = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    bare = _time(lambda: detector.run(tensor), n)
    pipeline = Pipeline(detector)
    acc = InsertionAccumulator()
    k = iter(range(10**9))

    def per_frame() -> None:
        frame = frames[next(k) % len(frames)].copy()  # the grabber hands out a copy
        acc.add(pipeline.observe(frame))

    full = _time(per_frame, n)
    b_med, b_p99 = summary(bare)
    f_med, f_p99 = summary(full)
    ratio = f_med / b_med

    seq = InsertionSequence(3, width=1920, height=1080)
    seq.insert("MUG", gtin="4006381333931")
    seq.insert("TEA", gs1="(01)04012345000016(21)SN0042")
    big, _ = seq.frame()
    reader = BarcodeReader(BarcodeConfig(formats=("EAN13", "DataMatrix")))
    found = len(reader.read(big))
    codes = _time(lambda: reader.read(big), 10 if smoke else 60)
    c_med, c_p99 = summary(codes)
    model = f"{detector.info.version} sha256 {detector.info.sha256[:12]}"
    # How often each code is read at all on item-sized labels, arbitrary rotation, 1080p.
    read = {"EAN13": 0, "DataMatrix": 0}
    cartons = 5 if smoke else 40
    for seed in range(1000, 1000 + cartons):
        s = InsertionSequence(seed, width=1920, height=1080)
        s.insert("MUG", gtin="4006381333931")
        s.insert("TEA", gs1="(01)04012345000016(21)SN0042")
        for c in reader.read(s.frame()[0]):
            read[c.format] = read.get(c.format, 0) + 1
    return [
        Figure("vision: bare session.run", "ms", b_med, b_p99, "median <= 15 ms", b_med <= 15,
               note=model),
        Figure("vision: per-frame pipeline", "ms", f_med, f_p99, "<= 1.3x bare run",
               ratio <= 1.3, ratio=round(ratio, 3), baseline="vision: bare session.run",
               note="copy, resize, normalise, run, peaks, count, accumulate; 640x480 frames"),
        Figure("vision: barcode decode 1920x1080", "ms", c_med, c_p99, "median <= 25 ms",
               c_med <= 25, note=f"EAN-13 + GS1 DataMatrix, {found} codes read"),
        Figure("vision: EAN-13 read rate, 1080p", "share", read["EAN13"] / cartons,
               note=f"{cartons} rendered cartons, item-sized labels, any rotation"),
        Figure("vision: GS1 DataMatrix read rate, 1080p", "share", read["DataMatrix"] / cartons,
               note=f"{cartons} rendered cartons, item-sized labels, any rotation"),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    for f in run(args.smoke):
        print(f.as_dict())


if __name__ == "__main__":
    main()
