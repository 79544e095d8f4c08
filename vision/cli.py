"""`packstation vision count IMAGE...`: the technician's probe. Prints JSON per image."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vision.config import DEFAULT_MODEL


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    vision = subparsers.add_parser("vision", help="overhead camera: count items, read codes")
    sub = vision.add_subparsers(title="vision commands", metavar="COMMAND", required=True)
    count = sub.add_parser("count", help="count items and read codes in images; prints JSON")
    count.add_argument("images", nargs="+", type=Path)
    count.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX model")
    count.add_argument(
        "--detector", choices=["counter", "yolo"], default="counter", help="model runtime"
    )
    count.add_argument("--annotate", type=Path, help="write annotated JPEGs to this folder")
    count.add_argument("--catalog", type=Path, help="catalog JSON: map codes to SKUs")
    count.add_argument("--threads", type=int, default=2)
    count.set_defaults(func=run_count)


def run_count(args: argparse.Namespace) -> int:
    import cv2

    from vision.barcodes import BarcodeReader, code_index, sku_for
    from vision.config import BarcodeConfig, CounterDetectorConfig, YoloDetectorConfig
    from vision.detectors import create_detector
    from vision.evidence import evidence_jpeg
    from vision.observe import Pipeline

    if args.detector == "counter":
        det_cfg = CounterDetectorConfig(type="counter", model=args.model, threads=args.threads)
    else:
        det_cfg = YoloDetectorConfig(type="yolo", model=args.model, threads=args.threads)
    detector = create_detector(det_cfg)
    pipeline = Pipeline(detector, BarcodeReader(BarcodeConfig()))
    index = {}
    if args.catalog:
        from station.catalog_file import load_catalog

        index = code_index(load_catalog(args.catalog).barcode_index())
    status = 0
    results = []
    for path in args.images:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            results.append({"image": str(path), "error": "cannot read image"})
            status = 1
            continue
        obs = pipeline.observe(frame)
        per_sku: dict[str, int] = dict(obs.result.labels())
        codes = []
        for code in obs.codes:
            hit = sku_for(code, index) if index else None
            if hit is not None:
                per_sku[hit[0]] = per_sku.get(hit[0], 0) + hit[1]
            codes.append(
                {
                    "format": code.format,
                    "text": code.text,
                    "gtin": code.gtin,
                    "serial": code.serial,
                    "lot": code.lot,
                    "sku": hit[0] if hit else None,
                }
            )
        entry: dict[str, object] = {
            "image": str(path),
            "count": obs.count,
            "not_applicable": not obs.readable,
            "reason": obs.result.reason or None,
            "per_sku": per_sku,
            "codes": codes,
            "unreadable_score": round(obs.result.unreadable_score, 3),
            "infer_ms": round(obs.result.infer_ms, 2),
            "model": detector.info.as_dict(),
        }
        if args.annotate:
            ev = evidence_jpeg(frame, obs, directory=args.annotate, name=path.stem)
            entry["annotated"] = ev.path
            entry["annotated_sha256"] = ev.sha256
        results.append(entry)
    json.dump(results if len(results) > 1 else results[0], sys.stdout, indent=2)
    print()
    return status
