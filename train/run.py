"""Train a vessel segmentation model.

    fundus-train --preset improved --data drive --data-root ../shared/data --out runs/x
    torchrun --nproc-per-node 2 -m fundus_vessels.train.run --preset compact ...   # several GPUs or CPU processes

Writes under ``--out``: ``config.yaml``, ``log.jsonl`` (per step and per epoch), ``last.pt`` and
``best.pt`` (best validation MIoU), ``loss_curve.png``, and after training ``metrics.json`` with
panels of the best checkpoint on the validation split, and ``threshold.json`` (the vessel threshold
chosen on the validation split, stored in ``best.pt``). ``--resume`` continues a killed run from
its last checkpoint with the same patches and schedule: the weights match an uninterrupted run to
within float rounding (1e-6), and ``log.jsonl`` reads as one run.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.imageio import write_bytes, write_json
from fundus_vessels.runtime.preprocess import PreprocessConfig
from fundus_vessels.train import distributed
from fundus_vessels.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_resume_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from fundus_vessels.train.cli import get_args_parser
from fundus_vessels.train.config import FIELD_TYPES, ConfigError, TrainConfig, resolve_config
from fundus_vessels.train.datasets import DatasetError, PatchSampler, Sample, load_datasets, prepare, split_validation
from fundus_vessels.train.evaluate import evaluate_samples
from fundus_vessels.train.figures import plot_loss_curve
from fundus_vessels.train.models import build_model, count_parameters
from fundus_vessels.train.threshold import choose_on_validation

# settings a resumed run may change: the cosine schedule is re-derived from epochs
RESUMABLE_CHANGES = {"epochs", "max_steps", "out", "threads", "num_workers", "compile"}


class EpochPatches(Dataset):
    """The patches of one epoch: index ``i`` is patch ``i`` of :class:`PatchSampler` for that epoch."""

    def __init__(self, sampler: PatchSampler, length: int) -> None:
        self.sampler, self.length, self.epoch = sampler, length, 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.sampler.sample(self.epoch, index)
        return torch.from_numpy(x), torch.from_numpy(y)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)


def start_from(model: nn.Module, path: Path, spec: dict, preprocess: PreprocessConfig) -> None:
    """Load the weights of checkpoint ``path`` (``--init``) into ``model``; same architecture and preprocessing."""
    if not path.is_file():
        raise ConfigError(f"{path}: --init checkpoint not found")
    ckpt = load_checkpoint(path)
    if ckpt["model_spec"] != spec:
        raise ConfigError(f"{path}: --init model {ckpt['model_spec']} differs from this run's {spec}")
    if PreprocessConfig.from_dict(ckpt["preprocess"]) != preprocess:
        raise ConfigError(f"{path}: --init checkpoint was trained with other preprocessing")
    model.load_state_dict(ckpt["model"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Data:
    """What one run trains and validates on."""

    train_samples: list[Sample]
    val_samples: list[Sample]
    patches: EpochPatches
    sampler: DistributedSampler
    preprocess: PreprocessConfig
    tiling: dict


@dataclass
class Run:
    """The mutable state of a training run: what a checkpoint saves and ``--resume`` restores."""

    cfg: TrainConfig
    spec: dict
    model: nn.Module
    net: nn.Module  # what the step runs: the model, wrapped for DDP and/or compiled
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    memory_format: torch.memory_format
    steps_per_epoch: int
    last_step: int
    step: int = 0
    best: float = -1.0
    history: list[dict] = field(default_factory=list)
    seconds_before: float = 0.0  # training wall-clock of earlier (killed) sessions
    started: float = field(default_factory=time.time)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and shipped: the EMA ones when ``cfg.ema > 0``."""
        return self.ema.module if self.ema is not None else self.model

    def seconds(self) -> float:
        return self.seconds_before + time.time() - self.started

    def state(self, epoch: int, data: Data) -> dict:
        """The checkpoint dict (see :mod:`fundus_vessels.train.checkpoint`)."""
        return {
            "train_seconds": self.seconds(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "step": self.step,
            "config": self.cfg.to_dict(),
            "seed": self.cfg.seed,
            "threshold": self.cfg.threshold,
            "model_spec": self.spec,
            "preprocess": data.preprocess.to_dict(),
            "tiling": data.tiling,
            "best": self.best,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "val_images": [s.name for s in data.val_samples],
            "train_images": [s.name for s in data.train_samples],
        }


def load_data(cfg: TrainConfig, info: distributed.DistInfo) -> Data:
    """Datasets, the validation split, and the deterministic patch stream of every epoch."""
    preprocess = PreprocessConfig(cfg.channel, cfg.clahe_clip, cfg.clahe_grid)
    samples = load_datasets(cfg.data, Path(cfg.data_root), "train", cfg.scale_reference)
    train_samples, val_samples = split_validation(samples, cfg.val_fraction, cfg.seed, cfg.val_split)
    sampler = PatchSampler(prepare(train_samples, preprocess), cfg.patch_size, cfg.seed, cfg.augment, cfg.weight_of())
    patches = EpochPatches(sampler, cfg.samples_per_epoch)
    dist_sampler = DistributedSampler(patches, info.world_size, info.rank, shuffle=True, seed=cfg.seed)
    tiling = {"tile": cfg.tile, "overlap": cfg.overlap}
    return Data(train_samples, val_samples, patches, dist_sampler, preprocess, tiling)


def build_run(cfg: TrainConfig, info: distributed.DistInfo, data: Data) -> Run:
    """Model, optimiser, schedule and EMA of a fresh run."""
    steps_per_epoch = len(data.sampler) // cfg.batch_size
    total_steps = steps_per_epoch * cfg.epochs
    spec = {
        "name": cfg.model,
        "kwargs": {"in_channels": 1, "num_classes": 2, "activation": cfg.activation, "width": cfg.width},
    }
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = build_model(spec).to(info.device).to(memory_format=memory_format)
    optimizer = make_optimizer(model, cfg)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    net = DistributedDataParallel(model) if info.enabled else model
    return Run(
        cfg=cfg,
        spec=spec,
        model=model,
        net=torch.compile(net) if cfg.compile else net,
        ema=ema,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, cfg, total_steps),
        scaler=torch.amp.GradScaler("cuda", enabled=info.device.type == "cuda"),
        memory_format=memory_format,
        steps_per_epoch=steps_per_epoch,
        last_step=min(total_steps, cfg.max_steps) if cfg.max_steps else total_steps,
    )


def restore(run: Run, out: Path) -> None:
    """Continue from ``out/last.pt``: weights, optimiser, schedule, RNG, history and wall-clock."""
    ckpt = load_resume_checkpoint(out)
    now, defaults = run.cfg.to_dict(), TrainConfig().to_dict()  # settings added since the checkpoint: defaults
    changed = sorted(k for k in now if ckpt["config"].get(k, defaults[k]) != now[k])
    if set(changed) - RESUMABLE_CHANGES:
        raise ConfigError(f"--resume with a different config ({', '.join(changed)}): use the run's own settings")
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    if run.ema is not None and "ema" in ckpt:
        run.ema.load_state_dict(ckpt["ema"])
    run.step, run.best, run.history = ckpt["step"], ckpt["best"], ckpt["history"]
    run.seconds_before = float(ckpt.get("train_seconds", 0.0))
    torch.set_rng_state(ckpt["torch_rng"])


class RunLog:
    """``log.jsonl``: one JSON record per line. On resume it drops what came after the checkpoint."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        if resume_step is not None and path.is_file():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            write_bytes(path, "".join(line + "\n" for line in kept).encode())
        self._file = open(path, "a")  # noqa: SIM115 - kept open for the whole run

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def train_one_epoch(
    run: Run, data: Data, epoch: int, log: RunLog | None, bar: tqdm, info: distributed.DistInfo
) -> None:
    """The steps of ``epoch`` from where the run stands (mid-epoch after a resume), checkpointing as it goes.

    ``log`` is None on every process but the main one.
    """
    cfg, device = run.cfg, info.device
    data.patches.epoch = epoch
    data.sampler.set_epoch(epoch)
    skip = (run.step - epoch * run.steps_per_epoch) * cfg.batch_size
    indices = list(data.sampler)[skip : run.steps_per_epoch * cfg.batch_size]
    loader = DataLoader(
        data.patches, batch_size=cfg.batch_size, sampler=indices, num_workers=cfg.num_workers, drop_last=True
    )
    run.net.train()
    t_log = time.time()
    for x, y in loader:
        x = x.to(device, non_blocking=True).to(memory_format=run.memory_format)
        loss = train_step(run, x, y.to(device, non_blocking=True), device)
        bar.update(1)
        if run.step % cfg.log_every == 0 or run.step == run.last_step:
            loss_value = distributed.all_reduce_mean(float(loss), info)  # syncs the device: log steps only
            if log is not None:
                rec = {
                    "kind": "step",
                    "step": run.step,
                    "epoch": epoch,
                    "loss": loss_value,
                    "lr": run.scheduler.get_last_lr()[0],
                    "sec_per_step": (time.time() - t_log) / cfg.log_every,
                }
                t_log = time.time()
                log.write(rec)
                bar.set_postfix(loss=f"{loss_value:.4f}")
        if log is not None and run.step % cfg.checkpoint_every == 0:
            save_checkpoint(Path(cfg.out) / "last.pt", run.state(epoch, data))
        if run.step >= run.last_step:
            break


def train_step(run: Run, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> torch.Tensor:
    """One optimiser step on a batch (cross-entropy over the two classes); returns the loss, still on the device."""
    with torch.autocast(device.type, enabled=device.type == "cuda"):
        loss = nn.functional.cross_entropy(run.net(x), y)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    run.step += 1
    return loss.detach()


def validate_and_checkpoint(
    run: Run, data: Data, epoch: int, seconds: float, log: RunLog, device: torch.device
) -> dict:
    """End of an epoch: score the validation split, keep ``best.pt`` by MIoU, write ``last.pt``."""
    out = Path(run.cfg.out)
    rec = {"kind": "epoch", "epoch": epoch, "step": run.step, "seconds": seconds, "train_minutes": run.seconds() / 60}
    shipped = {"model": run.eval_model.state_dict()}
    if data.val_samples:
        val = evaluate_samples(
            run.eval_model,
            data.val_samples,
            data.preprocess,
            data.tiling,
            run.cfg.threshold,
            device,
            batch=run.cfg.eval_batch,
        )["fov"]["pooled"]
        rec |= {"val_miou": val["miou"], "val_f1": val["f1"], "val_auc": val["auc"]}
        run.history.append(rec)
        if val["miou"] > run.best:
            run.best = val["miou"]
            save_checkpoint(out / "best.pt", run.state(epoch, data) | shipped | {"val_metrics": val})
    else:
        run.history.append(rec)
        save_checkpoint(out / "best.pt", run.state(epoch, data) | shipped)
    log.write(rec)
    save_checkpoint(out / "last.pt", run.state(epoch, data))
    return rec


def train(cfg: TrainConfig, resume: bool = False) -> int:
    """Run training to the end of ``cfg.epochs`` (or ``cfg.max_steps``); returns an exit code."""
    info = distributed.setup()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    data = load_data(cfg, info)
    run = build_run(cfg, info, data)
    if resume:
        restore(run, out)
    elif cfg.init:
        start_from(run.model, Path(cfg.init), run.spec, data.preprocess)
    log = None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        for tmp in remove_stale_temporaries(out):
            print(f"removed {tmp.name}, left by a run killed while saving a checkpoint", file=sys.stderr)
        write_bytes(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
        log = RunLog(out / "log.jsonl", run.step if resume else None)
        if run.step == 0:
            print(
                f"model {cfg.model} ({count_parameters(run.model) / 1e6:.2f} M parameters) on {info.device}, "
                f"{len(data.train_samples)} train / {len(data.val_samples)} val images, {run.last_step} steps"
            )
    bar = tqdm(total=run.last_step, initial=run.step, desc="train", disable=not info.is_main, dynamic_ncols=True)
    for epoch in range(run.step // run.steps_per_epoch, cfg.epochs):
        if run.step >= run.last_step:
            break
        started = time.time()
        train_one_epoch(run, data, epoch, log, bar, info)
        epoch_done = run.step % run.steps_per_epoch == 0 or run.step >= run.last_step
        if epoch_done and info.is_main:
            bar.write(json.dumps(validate_and_checkpoint(run, data, epoch, time.time() - started, log, info.device)))
        if info.enabled:
            torch.distributed.barrier()
    bar.close()
    if info.is_main:
        log.close()
        finish(out, data, cfg, info.device)
    distributed.teardown(info)
    return ExitStatus.OK


def finish(out: Path, data: Data, cfg: TrainConfig, device: torch.device) -> None:
    """Loss curve; the best checkpoint's threshold chosen and its scores on the validation split, with panels."""
    plot_loss_curve(out / "log.jsonl", out / "loss_curve.png")
    threshold = cfg.threshold
    if data.val_samples:
        threshold = choose_on_validation(out / "best.pt", Path(cfg.data_root), device)["threshold"]
    best = load_checkpoint(out / "best.pt")
    model = build_model(best["model_spec"]).to(device)
    model.load_state_dict(best["model"])
    metrics = (
        evaluate_samples(
            model,
            data.val_samples,
            data.preprocess,
            data.tiling,
            threshold,
            device,
            out / "val",
            panels=4,
            batch=cfg.eval_batch,
        )
        if data.val_samples
        else {}
    )
    metrics |= {"split": "validation", "checkpoint": str(out / "best.pt"), "step": best["step"]}
    write_json(out / "metrics.json", metrics)
    if data.val_samples:
        pooled = metrics["fov"]["pooled"]
        print(
            f"validation (FOV, pooled, threshold {threshold:.2f}): "
            + " ".join(f"{k}={pooled[k]:.4f}" for k in ("miou", "f1", "auc"))
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m fundus_vessels.train.run`` (torchrun): ``fundus-train``'s flags."""
    return run_args(get_args_parser().parse_args(argv))


def run_args(args: argparse.Namespace) -> int:
    """Train with the settings of a parsed ``fundus-train`` command line; returns the exit status."""
    overrides = {k: v for k, v in vars(args).items() if k in FIELD_TYPES and k != "preset"}
    try:
        cfg = resolve_config(args.preset, args.config, overrides)
        return train(cfg, resume=args.resume)
    except (DatasetError, ConfigError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE


if __name__ == "__main__":
    sys.exit(main())
