"""Train a vessel segmentation model.

    python train/run.py --preset improved --data drive --data-root ../shared/data --out runs/x
    torchrun --nproc-per-node 2 train/run.py --preset compact ...     # several GPUs or CPU processes

Writes under ``--out``: ``config.yaml``, ``log.jsonl`` (per step and per epoch), ``last.pt`` and
``best.pt`` (best validation MIoU), ``loss_curve.png``, and after training ``metrics.json`` with
panels of the best checkpoint on the validation split. ``--resume`` continues a killed run exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from fundus_vessels.runtime.imageio import write_bytes, write_json
from fundus_vessels.runtime.preprocess import PreprocessConfig
from fundus_vessels.train import distributed
from fundus_vessels.train.checkpoint import load_checkpoint, save_checkpoint
from fundus_vessels.train.config import FIELD_TYPES, PRESETS, ConfigError, TrainConfig, resolve_config
from fundus_vessels.train.datasets import DatasetError, PatchSampler, load_datasets, prepare, split_validation
from fundus_vessels.train.evaluate import evaluate_samples
from fundus_vessels.train.figures import plot_loss_curve
from fundus_vessels.train.models import build_model, count_parameters
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm


class EpochPatches(Dataset):
    """The patches of one epoch: index ``i`` is patch ``i`` of :class:`PatchSampler` for that epoch."""

    def __init__(self, sampler: PatchSampler, length: int) -> None:
        self.sampler, self.length, self.epoch = sampler, length, 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.sampler.sample(self.epoch, index)
        return torch.from_numpy(x), torch.from_numpy(y)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a fundus vessel segmentation model.")
    parser.add_argument("--preset", default="improved", choices=sorted(PRESETS), help="recipe to start from")
    parser.add_argument("--config", help="YAML file of settings (applied after the preset, before flags)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    for name, kind in FIELD_TYPES.items():
        if name == "preset":
            continue
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=f"({kind})")
    return parser


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


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k in FIELD_TYPES and k != "preset"}
    try:
        cfg = resolve_config(args.preset, args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return train(cfg, resume=args.resume)
    except (DatasetError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def train(cfg: TrainConfig, resume: bool = False) -> int:
    """Run training to the end of ``cfg.epochs`` (or ``cfg.max_steps``); returns an exit code."""
    info = distributed.setup()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    preprocess = PreprocessConfig(cfg.channel, cfg.clahe_clip, cfg.clahe_grid)
    tiling = {"tile": cfg.tile, "overlap": cfg.overlap}

    samples = load_datasets(cfg.data, Path(cfg.data_root), "train")
    train_samples, val_samples = split_validation(samples, cfg.val_fraction, cfg.seed)
    patches = EpochPatches(
        PatchSampler(prepare(train_samples, preprocess), cfg.patch_size, cfg.seed, cfg.augment), cfg.samples_per_epoch
    )
    dist_sampler = DistributedSampler(patches, info.world_size, info.rank, shuffle=True, seed=cfg.seed)
    steps_per_epoch = len(dist_sampler) // cfg.batch_size
    total_steps = steps_per_epoch * cfg.epochs
    last_step = min(total_steps, cfg.max_steps) if cfg.max_steps else total_steps

    spec = {
        "name": cfg.model,
        "kwargs": {"in_channels": 1, "num_classes": 2, "activation": cfg.activation, "width": cfg.width},
    }
    model = build_model(spec).to(info.device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, total_steps)
    use_amp = info.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, best, history, seconds_before = 0, -1.0, [], 0.0
    if resume:
        ckpt = load_checkpoint(out / "last.pt")
        if ckpt["config"] != cfg.to_dict():
            changed = sorted(k for k in cfg.to_dict() if ckpt["config"].get(k) != cfg.to_dict()[k])
            # a run may be lengthened or shortened on resume: the schedule is re-derived from epochs
            if set(changed) - {"epochs", "max_steps", "out", "threads", "num_workers"}:
                print(f"error: --resume with a different config ({', '.join(changed)})", file=sys.stderr)
                return 2
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        step, best, history = ckpt["step"], ckpt["best"], ckpt["history"]
        seconds_before = float(ckpt.get("train_seconds", 0.0))
        torch.set_rng_state(ckpt["torch_rng"])
    elif cfg.init:
        start_from(model, Path(cfg.init), spec, preprocess)
    # the weights that are validated and shipped: an EMA of the trained ones when cfg.ema > 0
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    if ema is not None and resume and "ema" in ckpt:
        ema.load_state_dict(ckpt["ema"])
    eval_model = ema.module if ema is not None else model
    net = DistributedDataParallel(model) if info.enabled else model
    if cfg.compile:
        net = torch.compile(net)
    run_start = time.time()
    criterion = nn.CrossEntropyLoss()

    def state(epoch: int) -> dict:
        return {
            "train_seconds": seconds_before + time.time() - run_start,
            **({"ema": ema.state_dict()} if ema is not None else {}),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch,
            "step": step,
            "config": cfg.to_dict(),
            "seed": cfg.seed,
            "model_spec": spec,
            "preprocess": preprocess.to_dict(),
            "tiling": tiling,
            "best": best,
            "history": history,
            "torch_rng": torch.get_rng_state(),
            "val_images": [s.name for s in val_samples],
            "train_images": [s.name for s in train_samples],
        }

    log = None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_bytes(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
        log = open(out / "log.jsonl", "a")  # noqa: SIM115 - kept open for the whole run
        if step == 0:
            print(
                f"model {cfg.model} ({count_parameters(model) / 1e6:.2f} M parameters) on {info.device}, "
                f"{len(train_samples)} train / {len(val_samples)} val images, {last_step} steps"
            )

    start_epoch = step // steps_per_epoch
    bar = tqdm(total=last_step, initial=step, desc="train", disable=not info.is_main, dynamic_ncols=True)
    for epoch in range(start_epoch, cfg.epochs):
        if step >= last_step:
            break
        patches.epoch = epoch
        dist_sampler.set_epoch(epoch)
        skip = (step - epoch * steps_per_epoch) * cfg.batch_size
        indices = list(dist_sampler)[skip : steps_per_epoch * cfg.batch_size]
        loader = DataLoader(
            patches, batch_size=cfg.batch_size, sampler=indices, num_workers=cfg.num_workers, drop_last=True
        )
        net.train()
        t0 = t_log = time.time()
        for x, y in loader:
            x = x.to(info.device, non_blocking=True).to(memory_format=memory_format)
            y = y.to(info.device, non_blocking=True)
            with torch.autocast(info.device.type, enabled=use_amp):
                loss = criterion(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == last_step:
                loss_value = distributed.all_reduce_mean(float(loss.item()), info)
                if info.is_main:
                    rec = {
                        "kind": "step",
                        "step": step,
                        "epoch": epoch,
                        "loss": loss_value,
                        "lr": scheduler.get_last_lr()[0],
                        "sec_per_step": (time.time() - t_log) / cfg.log_every,
                    }
                    t_log = time.time()
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{loss_value:.4f}")
            if info.is_main and step % cfg.checkpoint_every == 0:
                save_checkpoint(out / "last.pt", state(epoch))
            if step >= last_step:
                break
        epoch_done = step % steps_per_epoch == 0 or step >= last_step
        if epoch_done and info.is_main:
            rec = {
                "kind": "epoch",
                "epoch": epoch,
                "step": step,
                "seconds": time.time() - t0,
                "train_minutes": (seconds_before + time.time() - run_start) / 60,
            }
            if val_samples:
                val = evaluate_samples(
                    eval_model, val_samples, preprocess, tiling, cfg.threshold, info.device, batch=cfg.eval_batch
                )["fov"]["pooled"]
                rec |= {"val_miou": val["miou"], "val_f1": val["f1"], "val_auc": val["auc"]}
                history.append(rec)
                if val["miou"] > best:
                    best = val["miou"]
                    save_checkpoint(
                        out / "best.pt", state(epoch) | {"val_metrics": val, "model": eval_model.state_dict()}
                    )
            else:
                history.append(rec)
                save_checkpoint(out / "best.pt", state(epoch) | {"model": eval_model.state_dict()})
            log.write(json.dumps(rec) + "\n")
            log.flush()
            save_checkpoint(out / "last.pt", state(epoch))
            bar.write(json.dumps(rec))
        if info.enabled:
            torch.distributed.barrier()
    bar.close()
    if info.is_main:
        log.close()
        finish(out, val_samples, preprocess, tiling, cfg, info.device)
    distributed.teardown(info)
    return 0


def finish(
    out: Path, val_samples: list, preprocess: PreprocessConfig, tiling: dict, cfg: TrainConfig, device: torch.device
) -> None:
    """Loss curve, and the best checkpoint scored on the validation split with panels."""
    plot_loss_curve(out / "log.jsonl", out / "loss_curve.png")
    best = load_checkpoint(out / "best.pt")
    model = build_model(best["model_spec"]).to(device)
    model.load_state_dict(best["model"])
    metrics = (
        evaluate_samples(
            model, val_samples, preprocess, tiling, cfg.threshold, device, out / "val", panels=4, batch=cfg.eval_batch
        )
        if val_samples
        else {}
    )
    metrics |= {"split": "validation", "checkpoint": str(out / "best.pt"), "step": best["step"]}
    write_json(out / "metrics.json", metrics)
    if val_samples:
        pooled = metrics["fov"]["pooled"]
        print("validation (FOV, pooled): " + " ".join(f"{k}={pooled[k]:.4f}" for k in ("miou", "f1", "auc")))


if __name__ == "__main__":
    sys.exit(main())
