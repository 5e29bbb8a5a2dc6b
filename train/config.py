"""Training configuration: presets, YAML files and flags resolved into one validated config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """An unknown key or a bad value in a training configuration."""


def setting(default: object, help: str) -> object:
    """A :class:`TrainConfig` field with its description (``fundus-train --help`` shows it)."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every training setting; saved with each run as ``config.yaml``. ``FIELD_HELP[name]`` says what one does."""

    preset: str = setting("improved", "recipe the other settings start from (PRESETS: improved, unet, fcn, compact)")
    model: str = setting("unet", "architecture: unet (the paper's U-Net) or fcn (FCN-8s baseline)")
    activation: str = setting("leaky_relu", "relu or leaky_relu")
    width: float = setting(1.0, "channel multiplier (1.0: 32…512 channels, 7.85 M parameters; 0.25: 8…128)")
    optimizer: str = setting("adam", "adam or sgd")
    lr: float = setting(1e-3, "learning rate")
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(1e-4, "L2 weight decay")
    schedule: str = setting("constant", "learning-rate schedule: constant, or cosine over all steps")
    batch_size: int = setting(4, "patches per training step")
    patch_size: int = setting(256, "side of the square training patches in pixels (a multiple of 32)")
    samples_per_epoch: int = setting(800, "patches drawn per epoch")
    epochs: int = setting(50, "epochs to train")
    max_steps: int = setting(0, "stop after this many steps (0: no limit)")
    data: list[str] = field(
        default_factory=lambda: ["drive"], metadata={"help": "comma list of datasets: drive, chase, stare, folder:PATH"}
    )
    data_root: str = setting("../shared/data", "folder holding DRIVE/, CHASEDB1/, STARE/")
    dataset_weights: list[str] = field(
        default_factory=list,
        metadata={"help": "comma list NAME=W: patches of dataset NAME drawn W times as often (default 1; by FOV area)"},
    )
    val_fraction: float = setting(0.2, "share of the training images held out for validation")
    val_split: str = setting(
        "per_dataset",
        "per_dataset: validation drawn from each dataset; pooled: the earlier rule (Table 1, unet-drive-chase)",
    )
    augment: bool = setting(True, "random flips, 90° rotations and brightness/contrast jitter of the patches")
    seed: int = setting(0, "seed of the validation split, the patches and the weights")
    channel: str = setting("gray", "input plane: gray (weighted RGB to gray) or green")
    clahe_clip: float = setting(2.0, "CLAHE clip limit")
    clahe_grid: int = setting(8, "CLAHE tiles per side")
    tile: int = setting(256, "tile side of whole-image evaluation and of the exported bundle (a multiple of 32)")
    overlap: int = setting(64, "overlap of neighbouring tiles in pixels")
    scale_reference: float = setting(
        0.0, "FOV diameter (px) every photograph is resampled to; 0: native scale; DRIVE's: 540"
    )
    threshold: float = setting(0.5, "vessel probability threshold of the validation scores")
    eval_batch: int = setting(4, "tiles per model call in evaluation")
    checkpoint_every: int = setting(100, "write last.pt every N steps")
    log_every: int = setting(10, "write a log.jsonl line every N steps")
    num_workers: int = setting(0, "DataLoader worker processes (0: patches drawn in the training process)")
    threads: int = setting(0, "torch intra-op threads (0: torch's default)")
    ema: float = setting(0.0, "decay of an exponential moving average of the weights (0: off); validated and shipped")
    channels_last: bool = setting(True, "NHWC tensors: about 1.5x faster convolutions on a CPU, same results")
    compile: bool = setting(False, "torch.compile the training step (about 1.2x more on a CPU; minutes to warm up)")
    init: str = setting("", "a checkpoint whose weights training starts from (fine-tuning); empty: random")
    out: str = setting("runs/train", "run folder: config.yaml, log.jsonl, last.pt, best.pt, metrics.json, figures")

    def validate(self) -> None:
        """Refuse bad values before any training starts."""
        checks = [
            (self.model in ("unet", "fcn"), "model must be unet or fcn"),
            (self.activation in ("relu", "leaky_relu"), "activation must be relu or leaky_relu"),
            (self.optimizer in ("adam", "sgd"), "optimizer must be adam or sgd"),
            (self.schedule in ("constant", "cosine"), "schedule must be constant or cosine"),
            (self.width > 0, "width must be positive"),
            (self.lr > 0, "lr must be positive"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.patch_size >= 32 and self.patch_size % 32 == 0, "patch_size must be a multiple of 32"),
            (self.tile >= 32 and self.tile % 32 == 0, "tile must be a multiple of 32"),
            (0 <= self.overlap < self.tile, "overlap must be in [0, tile)"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.max_steps >= 0, "max_steps must be >= 0"),
            (self.samples_per_epoch >= self.batch_size, "samples_per_epoch must be >= batch_size"),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
            (self.channel in ("gray", "green"), "channel must be gray or green"),
            (self.clahe_clip > 0 and self.clahe_grid >= 1, "clahe_clip > 0 and clahe_grid >= 1 required"),
            (0 < self.threshold < 1, "threshold must be in (0, 1)"),
            (bool(self.data), "data must name at least one dataset"),
            (0 <= self.ema < 1, "ema must be in [0, 1)"),
            (0 <= self.scale_reference <= 4096, "scale_reference must be in [0, 4096] pixels"),
            (self.val_split in ("per_dataset", "pooled"), "val_split must be per_dataset or pooled"),
            (_weights_ok(self.dataset_weights), "dataset_weights must be NAME=W entries with W > 0"),
        ]
        errors = [msg for ok, msg in checks if not ok]
        if errors:
            raise ConfigError("invalid config: " + "; ".join(errors))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def weight_of(self) -> dict[str, float]:
        """``dataset_weights`` as ``{dataset: weight}`` (datasets not named weigh 1)."""
        return parse_weights(self.dataset_weights)


def parse_weights(entries: list[str]) -> dict[str, float]:
    """``["drive=2", ...]`` as ``{"drive": 2.0, ...}``; ValueError for an entry that is not NAME=W with W > 0."""
    weights = {}
    for entry in entries:
        name, _, weight = entry.partition("=")
        weights[name] = float(weight)  # ValueError when "=" or the number is missing
        if not weights[name] > 0:
            raise ValueError(entry)
    return weights


def _weights_ok(entries: list[str]) -> bool:
    try:
        parse_weights(entries)
    except ValueError:
        return False
    return True


# What each preset changes relative to the dataclass defaults (the paper's improved U-Net).
PRESETS: dict[str, dict] = {
    # The paper's improved U-Net: Leaky ReLU, Adam lr 1e-3, weight decay 1e-4, batch 4, 256² tiles.
    "improved": {},
    # The original U-Net of the paper's comparison: ReLU + SGD.
    "unet": {"activation": "relu", "optimizer": "sgd", "lr": 1e-2, "momentum": 0.9},
    # FCN-8s baseline, trained like the original U-Net.
    "fcn": {"model": "fcn", "activation": "relu", "optimizer": "sgd", "lr": 1e-2, "momentum": 0.9},
    # CPU-friendly recipe of the shipped model: compact width, 64² patches, larger batch, cosine.
    "compact": {"width": 0.5, "patch_size": 64, "batch_size": 32, "samples_per_epoch": 16000, "schedule": "cosine"},
}

FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
FIELD_HELP = {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}
FIELD_DEFAULTS = {f.name: getattr(TrainConfig(), f.name) for f in dataclasses.fields(TrainConfig)}


def _coerce(key: str, value: object) -> object:
    kind = FIELD_TYPES[key]
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "list[str]":
            return [v for v in (value.split(",") if isinstance(value, str) else list(value)) if v]
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {key}: {value!r} (expected {kind})") from exc


def resolve_config(preset: str, yaml_path: str | None, overrides: dict[str, object]) -> TrainConfig:
    """Defaults ← preset ← YAML file ← flags; unknown keys and bad values raise ``ConfigError``."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    values: dict[str, object] = {"preset": preset, **PRESETS[preset]}
    if yaml_path:
        path = Path(yaml_path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        import yaml  # the train extra; the parser and the config's help need no YAML

        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(FIELD_TYPES))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    config = TrainConfig(**{k: _coerce(k, v) for k, v in values.items()})
    config.validate()
    return config
