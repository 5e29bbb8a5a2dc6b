"""Evaluate a checkpoint on whole images (tiling + stitching) with the protocol of the README (Results).

python -m fundus_vessels.train.evaluate --checkpoint runs/x/best.pt --data drive --split test --out runs/x/test
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fundus_vessels.runtime.bundle import bundle_path, load_bundle
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.imageio import read_image, write_image, write_json
from fundus_vessels.runtime.inference import predict_plane
from fundus_vessels.runtime.metrics import SegmentationEvaluator
from fundus_vessels.runtime.preprocess import PreprocessConfig, enhance, normalise
from fundus_vessels.runtime.scale import ScaleConfig, decide_scale, resample, resample_back
from fundus_vessels.train.backend import torch_predictor
from fundus_vessels.train.checkpoint import checkpoint_scale, load_model
from fundus_vessels.train.datasets import Sample, load_datasets
from fundus_vessels.train.figures import plot_panel

PROTOCOL = (
    "Vessel probability thresholded at {threshold}; pixels inside the FOV mask (DRIVE: official masks; "
    "CHASE_DB1/folders: computed from the image) unless region is whole_image. MIoU = mean of vessel IoU "
    "and background IoU. 'pooled' derives every score from one confusion matrix summed over all images "
    "(AUC from all pooled pixels); 'per_image_mean' averages per-image scores. Whole images are tiled "
    "({tile}x{tile}, overlap {overlap}) and stitched with blending weights."
)


ProbabilitySource = Callable[[Sample, np.ndarray], np.ndarray]


def score_samples(
    samples: list[Sample],
    probability_of: ProbabilitySource,
    preprocess: PreprocessConfig,
    tiling: dict,
    threshold: float,
    out_dir: Path | None = None,
    panels: int = 0,
    progress: bool = False,
    sweep: np.ndarray | None = None,
) -> dict:
    """Score whole images whose vessel probability comes from ``probability_of(sample, enhanced)``.

    Writes probability maps and the first ``panels`` figures under ``out_dir`` when given. With
    ``sweep`` (thresholds), ``fov.threshold_sweep`` holds the pooled FOV scores at each of them.
    """
    fov_eval = SegmentationEvaluator(threshold, use_fov=True)
    whole_eval = SegmentationEvaluator(threshold, use_fov=False)
    for i, s in enumerate(tqdm(samples, desc="evaluate", disable=not progress, leave=False)):
        enhanced = enhance(s.image, preprocess)
        prob = probability_of(s, enhanced)
        fov_eval.add(s.name, prob, s.label, s.fov)
        whole_eval.add(s.name, prob, s.label, None)
        if out_dir is not None:
            write_image(out_dir / "prob" / f"{s.name}_prob.png", np.round(prob * 255).astype(np.uint8))
            if i < panels:
                plot_panel(s.image, enhanced, s.label, prob, threshold, s.name, out_dir / "panels" / f"{s.name}.png")
    fov = fov_eval.summary()
    if sweep is not None:
        fov["threshold_sweep"] = fov_eval.sweep(sweep)
    return {
        "protocol": PROTOCOL.format(threshold=threshold, **tiling),
        "images": [s.name for s in samples],
        "fov": fov,
        "whole_image": whole_eval.summary(),
    }


def evaluate_samples(
    model: nn.Module,
    samples: list[Sample],
    preprocess: PreprocessConfig,
    tiling: dict,
    threshold: float,
    device: torch.device,
    out_dir: Path | None = None,
    panels: int = 0,
    batch: int = 4,
    progress: bool = False,
    sweep: np.ndarray | None = None,
    scale: ScaleConfig | None = None,
) -> dict:
    """Run ``model`` over whole images (tiling + stitching) and score them (``sweep``: see :func:`score_samples`).

    With ``scale``, each photograph is resampled to the model's scale as the runtime does, and its
    probability brought back to the photograph's size before scoring.
    """
    model.eval()
    predict = torch_predictor(model, device)

    def probability_of(sample: Sample, enhanced: np.ndarray) -> np.ndarray:
        factor = decide_scale(sample.fov, scale).factor if scale is not None else 1.0
        if factor != 1.0:
            enhanced = enhance(resample(sample.image, factor), preprocess)
        probability = predict_plane(normalise(enhanced, preprocess), predict, tiling["tile"], tiling["overlap"], batch)
        return resample_back(probability, sample.image.shape)

    return score_samples(samples, probability_of, preprocess, tiling, threshold, out_dir, panels, progress, sweep)


def prediction_reader(folder: Path) -> ProbabilitySource:
    """Probabilities from ``fundus-infer`` outputs: ``<stem>_prob.png`` in ``folder`` (value / 255)."""

    def probability_of(sample: Sample, enhanced: np.ndarray) -> np.ndarray:
        stem = sample.source.stem
        prob = read_image(folder / f"{stem}_prob.png")
        if prob.shape[:2] != sample.label.shape:
            raise ValueError(f"{folder / stem}_prob.png: size {prob.shape[:2]} differs from the label's")
        return prob.astype(np.float32) / 255.0

    return probability_of


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Evaluate a checkpoint on whole fundus images.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint written by train/run.py")
    source.add_argument("--predictions", help="folder of fundus-infer outputs (<stem>_prob.png) to score instead")
    parser.add_argument("--data", default="drive", help="datasets, comma-separated: drive, chase, folder:PATH")
    parser.add_argument("--data-root", default="../shared/data", help="folder holding DRIVE/ and CHASEDB1/")
    parser.add_argument("--split", choices=["train", "test"], default="test", help="which official split")
    parser.add_argument("--out", required=True, help="output folder for metrics.json, prob maps, panels")
    parser.add_argument("--panels", type=int, default=4, help="how many image panels to draw")
    parser.add_argument("--overlap", type=int, default=None, help="override the checkpoint's tile overlap")
    parser.add_argument("--model", default=None, help="bundle whose preprocessing/threshold apply to --predictions")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    samples = load_datasets(args.data.split(","), Path(args.data_root), args.split)
    out = Path(args.out)
    if args.checkpoint:
        model, ckpt = load_model(args.checkpoint)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        tiling = dict(ckpt["tiling"])
        if args.overlap is not None:
            tiling["overlap"] = args.overlap
        threshold = float(ckpt["threshold"])
        metrics = evaluate_samples(
            model,
            samples,
            PreprocessConfig.from_dict(ckpt["preprocess"]),
            tiling,
            threshold,
            device,
            out,
            panels=args.panels,
            progress=True,
            scale=checkpoint_scale(ckpt),
        )
        metrics["checkpoint"] = str(args.checkpoint)
    else:
        bundle = load_bundle(bundle_path(args.model) if args.model else None)
        tiling = {"tile": bundle.tile, "overlap": bundle.overlap}
        metrics = score_samples(
            samples,
            prediction_reader(Path(args.predictions)),
            bundle.preprocess,
            tiling,
            bundle.threshold,
            out,
            panels=args.panels,
            progress=True,
        )
        metrics["predictions"] = str(args.predictions)
    metrics |= {"split": args.split, "data": args.data}
    write_json(out / "metrics.json", metrics)
    pooled = metrics["fov"]["pooled"]
    print(" ".join(f"{k}={pooled[k]:.4f}" for k in ("miou", "f1", "accuracy", "sensitivity", "specificity", "auc")))
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())
