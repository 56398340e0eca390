"""``ecg quickstart``: the whole pipeline on a synthetic PTB-XL, each step shown live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ecgcli.cli.common import Device, Workers, settings_from


def quickstart(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for everything quickstart writes.")] = Path(
        "quickstart"
    ),
    records: Annotated[int, typer.Option("--records", min=50, help="Synthetic records to generate.")] = 1500,
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Epochs of supervised training and of fine-tuning.")
    ] = 20,
    ssl_epochs: Annotated[
        int | None, typer.Option("--ssl-epochs", min=1, help="SimCLR epochs \\[default: half of --epochs].")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic dataset.")] = 0,
    device: Device = None,
    workers: Workers = None,
) -> None:
    """Run the whole pipeline on a synthetic PTB-XL in about two minutes on two CPU cores.

    synthetic PTB-XL → verify → supervised baseline → SimCLR → fine-tune → compare → predict.
    Everything goes under --out; running it again reuses what is done and resumes what was
    interrupted.

    Example: ecg quickstart --out quickstart --records 1500
    """
    from ecgcli.cli.compare import print_comparison
    from ecgcli.cli.data import print_verify_report
    from ecgcli.cli.formats import to_markdown
    from ecgcli.cli.predict_view import print_prediction
    from ecgcli.cli.render import TrainingView, out, print_evaluation, progress_events
    from ecgcli.experiments.quickstart import Quickstart, QuickstartConfig
    from ecgcli.files import write_text_atomic
    from ecgcli.scoring.evaluate import evaluation_from_metrics

    s = settings_from(ctx, device=device, workers=workers)
    qs = Quickstart(
        QuickstartConfig(
            out=out_dir,
            records=records,
            seed=seed,
            epochs=epochs,
            ssl_epochs=ssl_epochs or max(1, epochs // 2),
            device=s.device,
            workers=s.resolved_workers(),
        )
    )
    steps = 7

    def header(i: int, title: str) -> None:
        out.rule(f"[bold]{i}/{steps}[/] {title}", align="left")

    header(1, "a synthetic PTB-XL")
    with progress_events() as callback:
        made = qs.synth(callback)
    out.print(f"{'wrote' if made else 'reusing'} {qs.data_root} ({records} records, 100 Hz)")

    header(2, "ecg data verify")
    with progress_events() as callback:
        report = qs.verify(callback)
    print_verify_report(report, show=5)

    header(3, "ecg train supervised (focal loss, oversampling, 10% labels)")
    with TrainingView("supervised baseline") as view:
        sup = qs.supervised(view)
    _note_reuse(sup)
    print_evaluation(evaluation_from_metrics(sup.metrics), sup.run_dir, sup.run_dir / "model.safetensors")

    header(4, "ecg train ssl --method simclr (every record of folds 1-8, no labels)")
    with TrainingView("SimCLR pretraining") as view:
        ssl = qs.ssl(view)
    _note_reuse(ssl)
    probe, init = ssl.metrics.get("final_probe") or {}, ssl.metrics.get("probe_at_init") or {}
    if probe and init:
        out.print(
            f"linear probe on fold 9: AUROC {init['probe_auroc']:.4f} untrained → "
            f"{probe['probe_auroc']:.4f} pretrained (F1 {init['probe_f1']:.4f} → {probe['probe_f1']:.4f})"
        )

    header(5, "ecg finetune (the SimCLR encoder, same configuration and seed as the baseline)")
    with TrainingView("fine-tuning the SimCLR encoder") as view:
        ft = qs.finetune(view)
    _note_reuse(ft)
    print_evaluation(evaluation_from_metrics(ft.metrics), ft.run_dir, ft.run_dir / "model.safetensors")

    header(6, "ecg compare (test fold 10)")
    with progress_events() as callback:
        comparison, plots = qs.compare(callback)
    write_text_atomic(qs.compare_dir / "comparison.md", to_markdown(comparison))
    print_comparison(comparison)
    for path in [qs.compare_dir / "comparison.md", *plots]:
        out.print(f"wrote {path}")

    header(7, "ecg predict (the fine-tuned model on a test record)")
    prediction, truth, predictor = qs.predict()
    print_prediction(predictor, prediction, "mean")
    out.print(f"true superclasses of this record: {', '.join(truth) or 'none'}")

    out.rule("[bold green]done[/]", align="left")
    out.print(
        f"Everything is under {out_dir}/ (data, cache, runs, compare). Running quickstart again reuses it.\n"
        "Next, on real PTB-XL (download it from PhysioNet, or set ECG_DATA_ROOT):\n"
        "  ecg data verify --data-root data/PTB-XL\n"
        "  ecg train supervised --data-root data/PTB-XL                       # the baseline, 30 epochs\n"
        "  ecg train ssl --method simclr --data-root data/PTB-XL --epochs 20\n"
        "  ecg finetune --ssl-checkpoint runs/simclr-s42/model.safetensors --data-root data/PTB-XL\n"
        "  ecg multiseed -c focal+oversample -c finetune:simclr=runs/simclr-s42/model.safetensors "
        "--seeds 42,52,62\n"
        "  ecg compare runs/multiseed --plots figures",
        soft_wrap=True,
    )


def _note_reuse(step) -> None:
    from ecgcli.cli.render import out

    if step.status == "reused":
        out.print(f"[dim]reusing the finished run in {step.run_dir}[/]")
