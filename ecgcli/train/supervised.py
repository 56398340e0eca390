"""Supervised training of the classifier (``ecg train supervised``, and ``ecg finetune``).

objective = loss(head(encoder(x)), y) on the labelled fraction of folds 1-8, batches drawn by
the balancing strategy; selection on fold 9 (macro F1 at 0.5 by default), thresholds tuned on
fold 9, and the best model scored on fold 10. Fine-tuning is the same run with an encoder
loaded from an SSL checkpoint (``init_encoder``), optionally frozen (a linear probe) or trained
with its own, smaller learning rate.

Under torchrun (``dist``) ``--batch-size`` is the global batch; each rank trains on its shard
through ``DistributedDataParallel`` with per-rank BatchNorm, validation and test predictions
are gathered from all ranks, and only rank 0 writes (see :mod:`ecgcli.train.distributed`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgcli.data.leads import lead_indices, parse_leads
from ecgcli.data.loader import EpochSampler, batch_slices
from ecgcli.data.normalize import fit_lead_norm
from ecgcli.errors import ConfigError
from ecgcli.events import Callback, Message, ignore
from ecgcli.models import ECGClassifier
from ecgcli.scoring.calibration import apply_temperature, calibration_report, fit_temperature
from ecgcli.scoring.evaluate import evaluate_split_pair, headline, predict_proba, predict_window_logits
from ecgcli.scoring.metrics import compute_metrics
from ecgcli.scoring.stats import test_bootstraps
from ecgcli.storage.checkpoint import checkpoint_meta, save_checkpoint
from ecgcli.storage.runs import RunDir
from ecgcli.train.config import SupervisedConfig, encoder_width
from ecgcli.train.data import (
    CachedRows,
    TrainingData,
    labels_tensor,
    random_crop,
    split_signals,
    take_rows,
)
from ecgcli.train.distributed import Distributed
from ecgcli.train.loop import optimizer_class, selection_warning
from ecgcli.train.losses import build_loss
from ecgcli.train.run import (
    RunResult,
    TrainingRun,
    data_summary,
    resumable_config,
    resume_hint,
    run_trainer,
    says_what_is_saved,
)
from ecgcli.train.seeds import epoch_seed


class ClassifierObjective:
    """Batches of the labelled training tensor; validation on fold 9 every epoch.

    ``batch_size`` is this process's batch; with ``dist``, this rank's shard of each epoch's
    order, the model trained through ``DistributedDataParallel``, validation gathered.
    """

    def __init__(
        self,
        model: ECGClassifier,
        x: torch.Tensor | CachedRows,
        y: torch.Tensor,
        sampler: EpochSampler,
        batch_size: int,
        loss_fn: nn.Module,
        x_val: torch.Tensor | CachedRows,
        y_val: np.ndarray,
        window: int,
        seed: int,
        device: torch.device,
        freeze_encoder: bool = False,
        dist: Distributed | None = None,
        score: Callable[[nn.Module, torch.Tensor], np.ndarray] | None = None,
        class_names: tuple[str, ...] | None = None,
    ) -> None:
        self.module = model
        self.dist = dist or Distributed(device=device)
        if freeze_encoder:  # before DDP registers the parameters it reduces
            model.encoder.requires_grad_(False)
        self.net = self.dist.wrap(model)  # the model itself in one process
        self.x, self.y = x, y
        self.sampler, self.batch_size, self.loss_fn = sampler, batch_size, loss_fn
        self.x_val, self.y_val = x_val, y_val
        self.window, self.seed, self.device = window, seed, device
        self.freeze_encoder = freeze_encoder
        self.score = score or scorer(window, x_val.shape[-1], device)
        self.class_names = class_names
        self._slices = batch_slices(self.dist.shard_size(len(y)), batch_size)

    def n_batches(self, epoch: int) -> int:
        return len(self._slices)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.freeze_encoder:
            self.module.encoder.eval()  # a probe must not update BatchNorm statistics either
        order = torch.from_numpy(self.dist.shard(self.sampler.order(epoch))).to(self.x.device)
        gen = torch.Generator(device=self.x.device).manual_seed(
            epoch_seed(self.seed, epoch, self.dist.stream(1))
        )
        for sl in self._slices:
            rows = order[sl]
            x = take_rows(self.x, rows)
            if self.window < x.shape[-1]:
                x = random_crop(x, self.window, gen)
            yield x.to(self.device, non_blocking=True), self.y.index_select(0, rows).to(self.device)

    def samples(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        return batch[0].shape[0]

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return self.loss_fn(self.net(x).float(), y)

    def after_step(self, step: int, total_steps: int) -> None:
        return None

    def validate(self, epoch: int) -> dict[str, float]:
        prob = self.dist.predict_rows(lambda x: self.score(self.module, x), self.x_val)
        names = self.class_names
        return self.dist.on_main(lambda: headline(compute_metrics(self.y_val, prob, class_names=names)))


def scorer(
    window: int, length: int, device: torch.device, stride: int | None = None, aggregate: str = "mean"
) -> Callable[[nn.Module, torch.Tensor], np.ndarray]:
    """How a run scores whole records: one pass when its window is the record, else the
    record's windows every ``stride`` samples, combined by ``aggregate`` (what predict does)."""
    cut = window if window < length else None
    return lambda model, x: predict_proba(model, x, device, cut, stride=stride, aggregate=aggregate)


def _build_model(
    cfg: SupervisedConfig, n_classes: int, init_encoder: Callable[[], tuple[nn.Module, dict]] | None
):
    if init_encoder is None:
        model = ECGClassifier.build(
            cfg.encoder, n_classes, head=cfg.head, in_ch=len(parse_leads(cfg.leads)), **encoder_width(cfg)
        )
        return model, {}
    encoder, info = init_encoder()
    model = ECGClassifier(encoder, n_classes, head=cfg.head)
    model.encoder_name = info.get("encoder", cfg.encoder)
    return model, info


@torch.no_grad()
def refit_batchnorm(
    encoder: nn.Module, x: torch.Tensor | CachedRows, window: int, batch_size: int = 256
) -> int:
    """Set every BatchNorm's running statistics to their average over the records ``x`` (their
    first ``window`` samples); returns how many layers were refitted.

    A frozen *random* encoder (``probe:random``) would otherwise normalise with its initial
    statistics (mean 0, variance 1), so its features would be scaled by chance and a linear head
    would judge the initialisation's scale, not the random features. Refitting is what a
    pretrained encoder's statistics already are: those of real inputs. Nothing is learned.
    """
    layers = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over every batch
    was_training = encoder.training
    encoder.train()
    for start in range(0, len(x), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(x)))
        encoder(take_rows(x, rows)[:, :, :window].to(next(encoder.parameters()).device))
    for m, momentum in zip(layers, momenta, strict=True):
        m.momentum = momentum
    encoder.train(was_training)
    return len(layers)


def _optimizer(model: ECGClassifier, cfg: SupervisedConfig) -> torch.optim.Optimizer:
    if cfg.freeze_encoder:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        groups = [{"params": list(model.head.parameters()), "lr": cfg.lr}]
    elif cfg.encoder_lr is not None:
        groups = [
            {"params": list(model.encoder.parameters()), "lr": cfg.encoder_lr},
            {"params": list(model.head.parameters()), "lr": cfg.lr},
        ]
    else:
        groups = [{"params": list(model.parameters()), "lr": cfg.lr}]
    return optimizer_class(cfg.optimizer)(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_classifier(
    cfg: SupervisedConfig,
    callback: Callback = ignore,
    resume: RunDir | None = None,
    init_encoder: Callable[[], tuple[nn.Module, dict[str, Any]]] | None = None,
    data: TrainingData | None = None,
    dist: Distributed | None = None,
) -> RunResult:
    """Train, select on fold 9, evaluate on fold 10, and write the run directory (the run
    skeleton is :func:`~ecgcli.train.run.run_trainer`; :class:`ClassifierTraining` is what
    differs).

    ``cfg.calibrate == "temperature"`` fits one temperature per class on fold 9 after
    selection (:func:`ecgcli.scoring.calibration.fit_temperature`), stores it in the checkpoint
    (predict and export apply it) and evaluates the calibrated probabilities (thresholds tuned
    on them); metrics.json reports the test calibration before and after.
    ``init_encoder`` returns a pretrained encoder and its checkpoint info (fine-tuning);
    ``data`` lets a caller that trains several models share one loaded dataset; ``dist`` is
    this process's place in a torchrun run (every rank calls this; only rank 0 writes).
    """
    if init_encoder is None and cfg.ssl_checkpoint:
        from ecgcli.train.finetune import pretrained_encoder

        def init_encoder() -> tuple[nn.Module, dict[str, Any]]:
            return pretrained_encoder(cfg)

    return run_trainer(ClassifierTraining(cfg, init_encoder), cfg, callback, resume, data, dist)


class ClassifierTraining:
    """A classifier's part of the run skeleton: the model (from the data's classes, or a
    pretrained encoder), the labelled tensors and balanced batches, the loss and optimiser, and
    at the end the fold-9/fold-10 evaluation (calibrated if asked) and the run's files."""

    sync_bn = False
    epoch_log = True

    def __init__(
        self, cfg: SupervisedConfig, init_encoder: Callable[[], tuple[nn.Module, dict[str, Any]]] | None
    ) -> None:
        self.cfg, self.init_encoder = cfg, init_encoder
        self.label_fraction = cfg.label_fraction

    def prepare(self, data: TrainingData, dist: Distributed, callback: Callback) -> None:
        # the data first (the task's classes size the head), then the model (a bad checkpoint
        # fails here), and only then the run directory: a run that cannot start leaves none
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        if cfg.ssl_checkpoint:  # a node without the checkpoint gets it from one that has it
            from ecgcli.storage.checkpoint import sidecar_path
            from ecgcli.train.finetune import encoder_path

            source = encoder_path(cfg.ssl_checkpoint)
            dist.share_files([source, sidecar_path(source)])
        n_classes = len(data.dataset.class_names)
        self.model, self.encoder_info = dist.main_first(
            lambda: _build_model(cfg, n_classes, self.init_encoder)
        )

    def start(self, run: TrainingRun) -> tuple[ClassifierObjective, torch.optim.Optimizer]:
        cfg, device, model = self.cfg, run.device, self.model
        ds, split, store = run.data.dataset, run.data.split, run.data.store
        self.leads = parse_leads(cfg.leads)
        rows = lead_indices(self.leads)
        self.norm = self.encoder_info.get("normalisation") or fit_lead_norm(store, split.train).subset(rows)
        y_train = ds.labels[split.train]
        x_train = split_signals(store, split.train, self.norm, device, rows)
        self.x_val = split_signals(store, split.val, self.norm, device, rows)
        self.x_test = split_signals(store, split.test, self.norm, device, rows)
        model.to(device)
        if cfg.freeze_encoder and self.init_encoder is None and not run.resumed:
            refit_batchnorm(model.encoder, x_train, cfg.signal_length)  # a random probe's features
        sampler = EpochSampler(y_train, cfg.balance_strategy, cfg.seed)
        self.frequencies = sampler.frequencies()
        run.callback(Message(_split_line(cfg, run.data, *self.frequencies)))
        loss_fn = build_loss(cfg.loss, y_train, cfg.focal_alpha, cfg.focal_gamma).to(device)
        self.score = scorer(cfg.signal_length, store.length, device, cfg.window_stride, cfg.aggregate)
        objective = ClassifierObjective(
            model,
            x_train,
            labels_tensor(y_train).to(device),
            sampler,
            run.local_batch,
            loss_fn,
            self.x_val,
            ds.labels[split.val],
            cfg.signal_length,
            cfg.seed,
            device,
            cfg.freeze_encoder,
            run.dist,
            self.score,
            ds.class_names,
        )
        return objective, _optimizer(model, cfg)

    def finish(self, run: TrainingRun, state: Any) -> tuple[RunResult, Callable[[], None]]:
        cfg, dist, model, data = self.cfg, run.dist, self.model, run.data
        ds, split = data.dataset, data.split
        warning = selection_warning(state.history, state.best_epoch, cfg.select_metric)
        if warning and dist.is_main:
            run.run.log(f"warning: {warning}")
            run.callback(Message(warning, level="warning"))
        t_eval = time.perf_counter()
        if state.best_state is not None:
            model.load_state_dict(state.best_state)
        y_val, y_test = ds.labels[split.val], ds.labels[split.test]
        p_val, p_test, calibration, temperature = self._probabilities(run, y_val, y_test)
        evaluation = dist.on_main(
            lambda: evaluate_split_pair(y_val, p_val, y_test, p_test, class_names=ds.class_names)
        )
        eval_seconds = time.perf_counter() - t_eval
        before, after = self.frequencies
        metrics = {
            "kind": cfg.kind,
            "task": cfg.task,
            "class_names": list(ds.class_names),
            "select_metric": cfg.select_metric,
            "best_epoch": state.best_epoch,
            "epochs_run": state.epoch,
            "stopped_early": state.stopped_early,
            "history": state.history,
            **evaluation.to_dict(),
            "bootstrap": dist.on_main(
                lambda: test_bootstraps(y_test, p_test, evaluation.test_tuned.sample_threshold)
            ),
            "calibration": calibration,
            "class_frequencies": {"train": before.tolist(), "sampled": after.tolist()},
            "data": data_summary(data),
            "timing": {
                "train_seconds": round(state.seconds, 2),
                "eval_seconds": round(eval_seconds, 2),
                "total_seconds": round(state.resumed_seconds + time.perf_counter() - run.started, 2),
                "device": str(run.device),
                "threads": torch.get_num_threads(),
            },
            "distributed": run.placement,
        }
        result = RunResult(run.run.path, run.run.model, evaluation, metrics)

        def write() -> None:
            _write_results(
                run.run,
                cfg,
                model,
                result,
                state,
                self.norm,
                self.encoder_info,
                data,
                (p_val, p_test),
                self.leads,
                temperature,
            )
            if temperature is not None:
                ece = calibration["test_uncalibrated"]["macro_ece"], calibration["test"]["macro_ece"]
                run.callback(
                    Message(
                        f"temperature scaling: test macro ECE {ece[0]:.4f} -> {ece[1]:.4f} (15 bins, fold 10)"
                    )
                )

        return result, write

    def _probabilities(
        self, run: TrainingRun, y_val: np.ndarray, y_test: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], np.ndarray | None]:
        """Fold-9 and fold-10 probabilities of the selected model, calibrated if asked: the
        probabilities, the calibration report and the temperatures (None: not calibrated)."""
        cfg, dist, model, device = self.cfg, run.dist, self.model, run.device
        names = list(run.data.dataset.class_names)
        if cfg.calibrate is None:
            p_val = dist.predict_rows(lambda x: self.score(model, x), self.x_val)
            p_test = dist.predict_rows(lambda x: self.score(model, x), self.x_test)
            return p_val, p_test, {"method": None, "test": calibration_report(y_test, p_test, names)}, None
        window = cfg.signal_length if cfg.signal_length < run.data.store.length else None

        def logits(x: torch.Tensor) -> np.ndarray:
            return predict_window_logits(model, x, device, window, stride=cfg.window_stride)

        z_val, z_test = dist.predict_rows(logits, self.x_val), dist.predict_rows(logits, self.x_test)
        temperature = fit_temperature(z_val, y_val, aggregate=cfg.aggregate)
        p_val = apply_temperature(z_val, temperature, cfg.aggregate)
        p_test = apply_temperature(z_test, temperature, cfg.aggregate)
        calibration = {
            "method": cfg.calibrate,
            "temperature": dict(zip(names, temperature.tolist(), strict=True)),
            "fitted_on": "val (fold 9)",
            "test_uncalibrated": calibration_report(
                y_test, apply_temperature(z_test, 1.0, cfg.aggregate), names
            ),
            "test": calibration_report(y_test, p_test, names),
        }
        return p_val, p_test, calibration, temperature


def _split_line(cfg: SupervisedConfig, data: TrainingData, before: np.ndarray, after: np.ndarray) -> str:
    """The records of each fold and the class frequency before and after balancing."""
    ds, split = data.dataset, data.split
    freq = ", ".join(
        f"{c} {b:.0%}→{a:.0%}" for c, b, a in list(zip(ds.class_names, before, after, strict=True))[:8]
    ) + (f" (+{len(ds.class_names) - 8} more classes)" if len(ds.class_names) > 8 else "")
    return (
        f"{len(split.train)} training records ({100 * cfg.label_fraction:g}% of folds 1-8), "
        f"{len(split.val)} validation, {len(split.test)} test; class frequency "
        f"({cfg.balance_strategy}): {freq}"
    )


def _write_results(
    run: RunDir,
    cfg: SupervisedConfig,
    model: ECGClassifier,
    result: RunResult,
    state: Any,
    norm: Any,
    encoder_info: dict[str, Any],
    data: TrainingData,
    probs: tuple[np.ndarray, np.ndarray],
    leads: tuple[str, ...],
    temperature: np.ndarray | None,
) -> None:
    """The run's final files: the best checkpoint, predictions, then metrics.json, which
    marks the run finished (until it exists, ``--resume`` redoes these from the saved state)."""
    evaluation, metrics = result.evaluation, result.metrics
    ds, split, store = data.dataset, data.split, data.store
    p_val, p_test = probs
    meta = checkpoint_meta(
        "classifier",
        architecture=model.architecture(),
        class_names=list(ds.class_names),
        task=cfg.task,
        leads=list(leads),
        sampling_rate=cfg.sampling_rate,
        signal_length=cfg.signal_length,
        window_stride=cfg.window_stride,
        aggregate=cfg.aggregate,
        thresholds=evaluation.thresholds.tolist(),
        normalisation=norm.to_dict(),
        config=cfg.to_dict(),
        metrics={
            "val": headline(evaluation.val),
            "test": headline(evaluation.test),
            "test_tuned": headline(evaluation.test_tuned),
            "best_epoch": state.best_epoch,
        },
        data={"cache_id": store.cache_id, "data_root": str(ds.root)},
        pretrained=encoder_info.get("source"),
        **({"temperature": temperature.tolist()} if temperature is not None else {}),
    )
    model.cpu()
    save_checkpoint(run.model, model, meta)
    if cfg.out:
        save_checkpoint(Path(cfg.out), model, meta)
    run.write_predictions(
        val_ecg_id=ds.ecg_ids[split.val],
        val_y=ds.labels[split.val],
        val_prob=p_val,
        test_ecg_id=ds.ecg_ids[split.test],
        test_y=ds.labels[split.test],
        test_prob=p_test,
    )
    run.write_metrics(metrics)
    t = evaluation.test
    run.log(
        f"test (fold 10): AUROC {t.macro_auroc:.4f} F1 {t.macro_f1:.4f} "
        f"F1@tuned {evaluation.test_tuned.macro_f1:.4f} best epoch {state.best_epoch}"
    )
    calibration = metrics.get("calibration") or {}
    if temperature is not None:
        run.log(
            f"temperature scaling (fold 9): T {' '.join(f'{v:.2f}' for v in temperature)}; test macro ECE "
            f"{calibration['test_uncalibrated']['macro_ece']:.4f} -> {calibration['test']['macro_ece']:.4f}"
        )


def resume_classifier(
    run_dir: Path,
    callback: Callback = ignore,
    *,
    kind: str | None = None,
    epochs: int | None = None,
    **kwargs: Any,
) -> RunResult:
    """Continue an interrupted run with the configuration it was started with (under
    torchrun, every rank loads the saved state; the number of processes may differ).

    ``kind`` (``supervised`` or ``finetune``: the command resuming it) refuses the other
    kind; ``epochs`` trains to that many epochs instead of the saved number."""

    def load() -> tuple[RunDir, SupervisedConfig]:
        run = RunDir.for_resume(run_dir)
        cfg = SupervisedConfig.from_dict(
            resumable_config(run, (kind,) if kind else ("supervised", "finetune"), epochs)
        )
        if run.finished:
            raise ConfigError(f"{run_dir}: this run already finished (see its metrics.json)")
        return run, cfg

    dist = kwargs.get("dist")
    if dist is not None:
        dist.share_files(RunDir(Path(run_dir)).resume_files())  # a node that lacks the run directory gets it
    run, cfg = dist.main_first(load) if dist is not None else load()
    with says_what_is_saved(run, resume_hint(run)):  # also while the data load, before the loop
        return train_classifier(cfg, callback, resume=run, **kwargs)
