"""``ecg quickstart``: the whole pipeline on a synthetic PTB-XL, steps reused when done.

synthetic PTB-XL → verify → supervised baseline → SimCLR pretraining → fine-tuning →
comparison (table and plots) → prediction on one test record. Everything goes under one
folder (``--out``); running the command again reuses every finished step, resumes an
interrupted training run from its last epoch, and redoes only what is missing. The defaults
are sized to finish in a few minutes on two CPU cores (2 minutes measured, 1.6 GB peak).

Each step is a method returning what the CLI shows; the CLI renders it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcli.events import Callback, Message, ignore
from ecgcli.storage.runs import RunDir


@dataclass
class QuickstartConfig:
    out: Path = Path("quickstart")
    records: int = 1500
    seed: int = 0
    epochs: int = 20  # supervised baseline and fine-tuning
    ssl_epochs: int = 10
    ssl_batch_size: int = 128
    label_fraction: float = 0.1
    device: str = "auto"
    workers: int = 1


@dataclass
class StepResult:
    """What a training step did (``trained``, ``resumed`` or ``reused``) and where."""

    status: str
    run_dir: Path
    metrics: dict[str, Any]


class Quickstart:
    def __init__(self, cfg: QuickstartConfig) -> None:
        self.cfg = cfg
        out = Path(cfg.out)
        self.data_root = out / "data" / "ptbxl"
        self.cache_dir = out / "data" / "cache"
        self.runs = out / "runs"
        self.supervised_dir = self.runs / "supervised"
        self.ssl_dir = self.runs / "simclr"
        self.finetune_dir = self.runs / "simclr-finetune"
        self.compare_dir = out / "compare"

    # -- data ---------------------------------------------------------------------------------

    def synth(self, callback: Callback = ignore) -> bool:
        """Write the synthetic PTB-XL unless it is there already; True if written now."""
        from ecgcli.data.ptbxl import is_ptbxl_folder
        from ecgcli.data.synth import write_synthetic_ptbxl

        if is_ptbxl_folder(self.data_root):
            return False
        write_synthetic_ptbxl(
            self.data_root, self.cfg.records, self.cfg.seed, workers=self.cfg.workers, callback=callback
        )
        return True

    def verify(self, callback: Callback = ignore) -> Any:
        from ecgcli.data.verify import verify_folder
        from ecgcli.errors import DataError

        report = verify_folder(self.data_root, 100, self.cfg.workers, callback)
        if not report.ok:
            raise DataError(
                f"{self.data_root}: verify found {len(report.problems)} problem(s); "
                f"run `ecg data verify --data-root {self.data_root}` for the list"
            )
        return report

    # -- training -----------------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        return {
            "data_root": str(self.data_root),
            "cache_dir": str(self.cache_dir),
            "runs_dir": str(self.runs),
            "device": self.cfg.device,
            "workers": self.cfg.workers,
            "seed": 42,
            "label_fraction": self.cfg.label_fraction,
        }

    def _classifier(self, run_dir: Path, callback: Callback, **options: Any) -> StepResult:
        from ecgcli.train.config import SupervisedConfig
        from ecgcli.train.supervised import resume_classifier, train_classifier

        cfg = SupervisedConfig(**self._common(), epochs=self.cfg.epochs, run_dir=str(run_dir), **options)
        return self._step(
            run_dir,
            callback,
            lambda: train_classifier(cfg, callback),
            lambda: resume_classifier(run_dir, callback),
        )

    def _step(
        self, run_dir: Path, callback: Callback, start: Callable[[], Any], resume: Callable[[], Any]
    ) -> StepResult:
        """Reuse, resume or train the run in ``run_dir`` (:func:`ecgcli.train.run.continue_run`)."""
        from ecgcli.train.run import continue_run

        def resumed() -> Any:
            callback(Message(f"resuming the interrupted run in {run_dir}"))
            return resume()

        action, result = continue_run(run_dir, start, resumed)
        metrics = RunDir(run_dir).read_json("metrics.json") if result is None else result.metrics
        return StepResult(action, run_dir, metrics)

    def supervised(self, callback: Callback = ignore) -> StepResult:
        """The reference baseline: focal loss, oversampling, 10% labels, from scratch."""
        return self._classifier(self.supervised_dir, callback)

    def ssl(self, callback: Callback = ignore) -> StepResult:
        """SimCLR on every record of folds 1-8 (labels unused), probed on fold 9 as it goes."""
        from ecgcli.train.config import SSLConfig
        from ecgcli.train.ssl import resume_ssl, train_ssl

        common = self._common()
        common.pop("label_fraction")
        cfg = SSLConfig(
            **common,
            method="simclr",
            epochs=self.cfg.ssl_epochs,
            batch_size=self.cfg.ssl_batch_size,
            probe_every=max(1, self.cfg.ssl_epochs // 4),
            probe_fraction=self.cfg.label_fraction,
            run_dir=str(self.ssl_dir),
        )
        return self._step(
            self.ssl_dir,
            callback,
            lambda: train_ssl(cfg, callback),
            lambda: resume_ssl(self.ssl_dir, callback),
        )

    def finetune(self, callback: Callback = ignore) -> StepResult:
        """The SimCLR encoder fine-tuned with the baseline's exact configuration and seed."""
        return self._classifier(
            self.finetune_dir, callback, ssl_checkpoint=str(self.ssl_dir / "model.safetensors"), width=None
        )

    # -- results ------------------------------------------------------------------------------

    def compare(self, callback: Callback = ignore) -> tuple[Any, list[Path]]:
        """The supervised and fine-tuned runs side by side; ROC plots when matplotlib exists.

        Returns the comparison as data; the CLI writes ``compare_dir/comparison.md`` from it
        (:func:`ecgcli.cli.formats.to_markdown`)."""
        from ecgcli.experiments.compare import compare
        from ecgcli.experiments.inputs import load_inputs

        methods = load_inputs([self.supervised_dir, self.finetune_dir], callback)
        comp = compare(methods, baseline=None, per_class=True)
        self.compare_dir.mkdir(parents=True, exist_ok=True)
        plots: list[Path] = []
        try:
            from ecgcli.experiments.plots import write_plots

            plots = write_plots(comp.methods, self.compare_dir, callback)
        except Exception as exc:  # plots are a bonus: matplotlib is an optional extra
            from ecgcli.errors import EcgError

            if not isinstance(exc, (EcgError, ImportError)):
                raise
            callback(Message(f"no plots: {exc}", "warning"))
        return comp, plots

    def predict(self) -> tuple[Any, list[str], Any]:
        """The fine-tuned model on the first fold-10 record (one it never trained on): the
        prediction, the record's true superclasses, and the predictor (for rendering)."""
        import numpy as np

        from ecgcli.data.ptbxl import TEST_FOLD, load_ptbxl
        from ecgcli.inference.predict import Predictor

        ds = load_ptbxl(self.data_root)
        row = int(np.flatnonzero((ds.folds == TEST_FOLD) & ds.labelled)[0])
        predictor = Predictor.from_checkpoint(self.finetune_dir / "model.safetensors", device="cpu")
        prediction = predictor.predict_one(ds.record_paths[row])
        truth = [c for c, y in zip(predictor.class_names, ds.labels[row], strict=True) if y]
        return prediction, truth, predictor
