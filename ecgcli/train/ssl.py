"""Self-supervised pretraining of the encoder (``ecg train ssl``): a method of the registry
(:mod:`ecgcli.ssl.methods`: SimCLR, BYOL, CPC, masked modelling).

Every record of folds 1-8 is used, labelled or not (17,441 on PTB-XL v1.0.1); labels are never
read for the objective; ``--pretrain-data`` adds the records of other WFDB folders, refused
when any is a fold 9-10 record (:mod:`ecgcli.data.extra`). Two-view methods get two views of
each batch from the batched ECG augmentations (:mod:`ecgcli.ssl.augment`), generated on the
training device; one-view methods (CPC, masked modelling) make their own task of the
normalised, unaugmented crop (masks drawn from the same seeded generator) and record no
augmentation. Every ``probe_every`` epochs a *linear probe* measures the representation:
logistic regression on frozen encoder features of the labelled fraction (the same records
``train supervised --seed S`` would use), scored on fold 9 (macro AUROC and F1), so the user
sees whether pretraining helps while it runs. Fold 10 is never touched here.

The output is an *encoder* checkpoint (``kind: encoder``) that ``ecg finetune`` loads; it
carries the normalisation fitted on the pretraining records and the augmentation set used.

Under torchrun (``dist``) ``--batch-size`` is the global batch; each rank augments and encodes
its shard through ``DistributedDataParallel``; SimCLR scores each rank's views against the
projections gathered from *all* ranks (gradients kept), so the negatives are those of the
global batch; BYOL's EMA target is updated on every rank from identical online weights.
BatchNorm is synchronized on CUDA and per rank on CPU. The probe runs on rank 0 and its
result is broadcast; only rank 0 writes (see :mod:`ecgcli.train.distributed`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgcli import LEADS
from ecgcli.data.extra import ExtraRecords, load_extra_records
from ecgcli.data.loader import batch_slices
from ecgcli.data.normalize import LeadNorm, fit_lead_norm
from ecgcli.errors import ConfigError
from ecgcli.events import Callback, Message, ignore
from ecgcli.models import build_encoder
from ecgcli.scoring.evaluate import encode
from ecgcli.scoring.metrics import compute_metrics
from ecgcli.storage.checkpoint import checkpoint_meta, save_checkpoint
from ecgcli.storage.runs import RunDir
from ecgcli.train.config import SSLConfig, encoder_width
from ecgcli.train.data import (
    CachedRows,
    TrainingData,
    random_crop,
    signals_tensor,
    split_signals,
    take_rows,
)
from ecgcli.train.distributed import Distributed, per_rank_batch
from ecgcli.train.loop import optimizer_class
from ecgcli.train.run import (
    RunResult,
    TrainingRun,
    resumable_config,
    resume_hint,
    run_trainer,
    says_what_is_saved,
)
from ecgcli.train.seeds import epoch_seed


def build_ssl_module(cfg: SSLConfig, encoder: nn.Module) -> nn.Module:
    from ecgcli.ssl import ssl_method

    return ssl_method(cfg.method).build(encoder, cfg)


class LinearProbe:
    """Logistic regression on frozen features: labelled fraction -> fold 9 (macro AUROC, F1)."""

    def __init__(self, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor, y_val: np.ndarray):
        self.x_train, self.y_train, self.x_val, self.y_val = x_train, y_train, x_val, y_val

    def score(self, encoder: nn.Module, device: torch.device) -> dict[str, float]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        f_train = encode(encoder, self.x_train, device)
        f_val = encode(encoder, self.x_val, device)
        clf = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(C=0.1, max_iter=2000)))
        clf.fit(f_train, self.y_train)
        prob = clf.predict_proba(f_val)
        m = compute_metrics(self.y_val, prob)
        return {"probe_auroc": m.macro_auroc, "probe_f1": m.macro_f1}


class SSLObjective:
    """Two augmented views of each batch of pretraining records; the SSL loss on them.

    ``x`` holds the records in millivolts: the augmentations' amplitudes (0.01 mV jitter,
    0.01-0.05 mV wander) are physical, so views are made first and normalised per lead after.
    """

    def __init__(
        self,
        module: nn.Module,
        x: torch.Tensor | CachedRows,
        cfg: SSLConfig,
        policy: Any,
        device: torch.device,
        probe: LinearProbe | None,
        norm: LeadNorm,
        dist: Distributed | None = None,
        keep: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        from ecgcli.ssl import ssl_method

        self.module, self.x, self.cfg, self.policy, self.device = module, x, cfg, policy, device
        self.views = ssl_method(cfg.method).views
        self.probe = probe
        self.keep = keep  # rank 0's: writes the encoder of a finished epoch (--save-every)
        self.dist = dist = dist or Distributed(device=device)
        if dist.active and hasattr(module, "gather"):
            module.gather = dist.gather  # e.g. SimCLR's negatives from every rank's views
        self.net = dist.wrap(module, sync_bn=True)  # the module itself in one process
        self.mean = torch.as_tensor(norm.mean, device=device).view(1, -1, 1)
        self.inv_std = (1.0 / torch.as_tensor(norm.std, device=device)).view(1, -1, 1)
        self._slices = batch_slices(dist.shard_size(len(x)), per_rank_batch(cfg.batch_size, dist.world))
        self.augment_seconds = 0.0

    def n_batches(self, epoch: int) -> int:
        return len(self._slices)

    def batches(self, epoch: int) -> Iterator[torch.Tensor]:
        self.augment_seconds = 0.0
        self._epoch_start = time.perf_counter()
        gen_cpu = torch.Generator().manual_seed(epoch_seed(self.cfg.seed, epoch, 2))
        order = self.dist.shard(torch.randperm(len(self.x), generator=gen_cpu)).to(self.x.device)
        self.generator = torch.Generator(device=self.device).manual_seed(
            epoch_seed(self.cfg.seed, epoch, self.dist.stream(3))
        )
        if hasattr(self.module, "generator"):
            self.module.generator = self.generator  # e.g. masked modelling's masks
        for sl in self._slices:
            x = take_rows(self.x, order[sl]).to(self.device, non_blocking=True)
            if self.cfg.signal_length < x.shape[-1]:
                x = random_crop(x, self.cfg.signal_length, self.generator)
            yield x

    def samples(self, batch: torch.Tensor) -> int:
        return batch.shape[0]

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        if self.views == 1:  # the method makes its own task of the record (masks, future steps)
            return self.net((batch - self.mean).mul_(self.inv_std))
        t = time.perf_counter()
        with torch.autocast(self.device.type, enabled=False):
            v1, v2 = self.policy.two_views(batch, self.generator)
            v1 = (v1 - self.mean).mul_(self.inv_std)
            v2 = (v2 - self.mean).mul_(self.inv_std)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.augment_seconds += time.perf_counter() - t
        return self.net(v1, v2)

    def after_step(self, step: int, total_steps: int) -> None:
        if hasattr(self.module, "after_step"):
            self.module.after_step(step, total_steps)  # e.g. BYOL's EMA target update

    def validate(self, epoch: int) -> dict[str, float]:
        train_seconds = time.perf_counter() - self._epoch_start
        out = {"augment_share": self.augment_seconds / max(train_seconds, 1e-9)}
        every = self.cfg.probe_every
        last = epoch + 1 == self.cfg.epochs
        if (self.probe is not None or self.dist.active) and every and ((epoch + 1) % every == 0 or last):
            probe = self.probe  # rank 0's; the other ranks wait for its scores
            out.update(
                self.dist.on_main(lambda: probe.score(self.module.encoder, self.device) if probe else {})
            )
        if self.keep is not None and self.cfg.save_every and (epoch + 1) % self.cfg.save_every == 0:
            self.keep(epoch + 1, out)
        return out


def train_ssl(
    cfg: SSLConfig,
    callback: Callback = ignore,
    resume: RunDir | None = None,
    data: TrainingData | None = None,
    dist: Distributed | None = None,
) -> RunResult:
    """Pretrain; returns the run (its directory, encoder checkpoint and metrics; ``dist``: see
    the module doc). The run skeleton is :func:`~ecgcli.train.run.run_trainer`;
    :class:`Pretraining` is what differs."""
    return run_trainer(Pretraining(cfg), cfg, callback, resume, data, dist)


class Pretraining:
    """Pretraining's part of the run skeleton: the records (with ``--pretrain-data``'s), the
    linear probe and its bar (the untrained encoder's score), the method's module and
    optimiser, and at the end the encoder checkpoint."""

    sync_bn = True
    epoch_log = False

    def __init__(self, cfg: SSLConfig) -> None:
        self.cfg = cfg
        self.label_fraction = cfg.probe_fraction

    def prepare(self, data: TrainingData, dist: Distributed, callback: Callback) -> None:
        self.extra = added_records(self.cfg, data, dist, callback)  # refused (leakage) before a run directory

    def start(self, run: TrainingRun) -> tuple[SSLObjective, torch.optim.Optimizer]:
        from ecgcli.ssl.augment import build_policy

        cfg, device, dist, extra = self.cfg, run.device, run.dist, self.extra
        ds, split, store = run.data.dataset, run.data.split, run.data.store
        self.norm = norm = fit_lead_norm(store, split.pretrain)
        mv = LeadNorm.identity(len(LEADS))  # mV: augment, then normalise
        if len(extra):  # added records are held in memory anyway: one tensor with them
            x = torch.cat([signals_tensor(store, split.pretrain, mv), torch.from_numpy(extra.millivolts())])
            x = x.to(device)
        else:
            x = split_signals(store, split.pretrain, mv, device)
        added = f" + {len(extra)} added by --pretrain-data" if cfg.pretrain_data else ""
        run.callback(
            Message(
                f"pretraining {cfg.method} on {len(split.pretrain)} records of folds 1-8 "
                f"({int((~ds.labelled[split.pretrain]).sum())} without a superclass){added}; probe: "
                f"{len(split.train)} labelled -> {len(split.val)} fold-9 records"
            )
        )
        probe = None
        if cfg.probe_every and dist.is_main:
            window = slice(0, cfg.signal_length)
            probe = LinearProbe(
                signals_tensor(store, split.train, norm)[..., window],
                ds.labels[split.train],
                signals_tensor(store, split.val, norm)[..., window],
                ds.labels[split.val],
            )
        torch.manual_seed(cfg.seed)
        encoder = build_encoder(cfg.encoder, in_ch=len(LEADS), **encoder_width(cfg))
        self.module = module = build_ssl_module(cfg, encoder).to(device)
        self.policy = build_policy(cfg.sampling_rate, disabled=cfg.no_aug)

        def keep(epoch: int, scores: dict[str, float]) -> None:
            """The encoder after ``epoch``, with a sidecar like the final one's (its probe, if it
            ran this epoch): a checkpoint ``ecg finetune --ssl-checkpoint`` takes as it is."""
            so_far = {
                "epochs_run": epoch,
                "final_probe": scores if "probe_auroc" in scores else None,
                "augmentations": self._augmentations(),
                "data": {"n_pretrain": int(len(split.pretrain)) + len(extra), "pretrain_data": extra.sources},
            }
            meta = encoder_meta(cfg, module.encoder, norm, self.policy, so_far, store.cache_id, str(ds.root))
            save_checkpoint(
                run.run.path / "checkpoints" / f"epoch-{epoch:03d}.safetensors", module.encoder, meta
            )

        self.objective = SSLObjective(
            module, x, cfg, self.policy, device, probe, norm, dist, keep=keep if dist.is_main else None
        )
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = optimizer_class(cfg.optimizer)(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if probe is not None and not run.resumed:
            # the same probe on the randomly initialised encoder: the bar pretraining must clear
            init_probe = probe.score(module.encoder, device)
            run.run.write_json("probe_at_init.json", init_probe)
            run.callback(
                Message(
                    f"linear probe of the untrained encoder (fold 9): AUROC {init_probe['probe_auroc']:.4f} "
                    f"F1 {init_probe['probe_f1']:.4f}"
                )
            )
        return self.objective, optimizer

    def _augmentations(self) -> list[str]:
        return list(self.policy.enabled) if self.objective.views == 2 else []  # one view: none used

    def finish(self, run: TrainingRun, state: Any) -> tuple[RunResult, Callable[[], None]]:
        cfg, module, extra = self.cfg, self.module, self.extra
        ds, split, store = run.data.dataset, run.data.split, run.data.store
        probes = [h for h in state.history if "probe_auroc" in h]
        metrics = {
            "kind": "ssl",
            "method": cfg.method,
            "epochs_run": state.epoch,
            "history": state.history,
            "final_probe": probes[-1] if probes else None,
            "probe_at_init": run.run.read_json("probe_at_init.json"),
            "augmentations": self._augmentations(),
            "data": {
                "n_pretrain": int(len(split.pretrain)) + len(extra),
                "n_pretrain_folds": int(len(split.pretrain)),
                "pretrain_data": extra.sources,
                "n_probe_train": int(len(split.train)),
                "n_probe_val": int(len(split.val)),
                "cache_id": store.cache_id,
                "data_root": str(ds.root),
            },
            "timing": {
                "train_seconds": round(state.seconds, 2),
                "total_seconds": round(state.resumed_seconds + time.perf_counter() - run.started, 2),
                "samples_per_s": [h["samples_per_s"] for h in state.history],
                "augment_share": [round(h["augment_share"], 4) for h in state.history],
                "device": str(run.device),
                "threads": torch.get_num_threads(),
            },
            "distributed": run.placement,
        }
        result = RunResult(run.run.path, run.run.model, None, metrics)

        def write() -> None:
            meta = encoder_meta(
                cfg, module.encoder, self.norm, self.policy, metrics, store.cache_id, str(ds.root)
            )
            module.cpu()
            save_checkpoint(run.run.model, module.encoder, meta)
            if cfg.out:
                save_checkpoint(Path(cfg.out), module.encoder, meta)
            run.run.write_metrics(metrics)
            last = probes[-1] if probes else {}
            run.run.log(
                f"{cfg.method} done: final loss {state.history[-1]['train_loss']:.4f} probe AUROC "
                f"{last.get('probe_auroc', float('nan')):.4f} F1 {last.get('probe_f1', float('nan')):.4f}"
            )

        return result, write


def encoder_meta(
    cfg: SSLConfig, encoder: nn.Module, norm: LeadNorm, policy: Any, metrics: dict, cache_id: str, root: str
) -> dict[str, Any]:
    last = metrics["final_probe"] or {}
    return checkpoint_meta(
        "encoder",
        architecture={
            "encoder": cfg.encoder,
            "encoder_args": encoder.config(),
            "feature_dim": encoder.out_dim,
        },
        ssl={
            "method": cfg.method,
            "temperature": cfg.temperature,
            "projection_dim": cfg.projection_dim,
            "hidden_dim": cfg.hidden_dim,
            "momentum_tau": cfg.momentum_tau,
            **(
                {"cpc_steps": cfg.cpc_steps, "cpc_context": cfg.cpc_context, "cpc_hidden": cfg.cpc_hidden}
                if cfg.method == "cpc"
                else {}
            ),
            "mask_ratio": cfg.mask_ratio,
            "mask_patch": cfg.mask_patch,
            "mask_mode": cfg.mask_mode,
            "epochs": metrics["epochs_run"],
        },
        augmentations=policy.config.to_dict(),
        augmentations_enabled=list(metrics["augmentations"]),
        probe_task=cfg.task,
        leads=list(LEADS),
        sampling_rate=cfg.sampling_rate,
        signal_length=cfg.signal_length,
        normalisation=norm.to_dict(),
        config=cfg.to_dict(),
        metrics={"probe_auroc": last.get("probe_auroc"), "probe_f1": last.get("probe_f1")},
        data={
            "cache_id": cache_id,
            "data_root": root,
            "n_pretrain": metrics["data"]["n_pretrain"],
            "pretrain_data": metrics["data"]["pretrain_data"],
        },
    )


def added_records(cfg: SSLConfig, data: TrainingData, dist: Distributed, callback: Callback) -> ExtraRecords:
    """The ``--pretrain-data`` records, leakage-guarded (:mod:`ecgcli.data.extra`); read once
    per node, then from the cache."""
    if not cfg.pretrain_data:
        return ExtraRecords(np.zeros((0, len(LEADS), data.store.length), np.int16), [])
    return dist.local_first(
        lambda: load_extra_records(
            cfg.pretrain_data,
            data.dataset,
            data.store,
            data.split.pretrain,
            Path(cfg.cache_dir),
            cfg.workers,
            callback,
        )
    )


def resume_ssl(
    run_dir: Path, callback: Callback = ignore, dist: Distributed | None = None, epochs: int | None = None
) -> RunResult:
    """Continue an interrupted pretraining run with its saved configuration (``epochs``: to
    that many epochs instead); a classifier run is refused with the command that resumes it."""

    def load() -> tuple[RunDir, SSLConfig]:
        run = RunDir.for_resume(run_dir)
        cfg = SSLConfig.from_dict(resumable_config(run, ("ssl",), epochs))
        if run.finished:
            raise ConfigError(f"{run_dir}: this run already finished (see its metrics.json)")
        return run, cfg

    if dist is not None:
        dist.share_files(RunDir(Path(run_dir)).resume_files())  # a node that lacks the run directory gets it
    run, cfg = dist.main_first(load) if dist is not None else load()
    with says_what_is_saved(run, resume_hint(run)):  # also while the data load, before the loop
        return train_ssl(cfg, callback, resume=run, dist=dist)
