"""Data-parallel training: sharding, the SimCLR gather, 2-process gloo runs through the real CLI.

The CLI runs start two worker processes each (``--nproc 2`` and plain ``torchrun``) on the
session's synthetic PTB-XL and its cache, with short crops so they stay quick on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.data.loader import STRATEGIES, EpochSampler, batch_slices, shard_order
from ecgcli.errors import ConfigError
from ecgcli.train.distributed import Distributed, peer_error, per_rank_batch
from ecgcli.train.launch import Nodes, strip_launch_options, torchrun_args

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


# ------------------------------------------------------------------ sharding and batch sizes


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("world", [2, 3, 4])
def test_shards_are_disjoint_equal_and_cover_the_truncated_order(strategy: str, world: int) -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((103, 5)) < [0.45, 0.25, 0.25, 0.12, 0.22]).astype(np.int64)
    order = EpochSampler(labels, strategy, seed=3).order(epoch=2)
    usable = len(order) - len(order) % world
    positions = [shard_order(np.arange(len(order)), r, world) for r in range(world)]
    assert {len(p) for p in positions} == {len(order) // world}  # equal: same number of batches
    flat = np.concatenate(positions)
    assert len(np.unique(flat)) == len(flat) and set(flat) == set(range(usable))  # disjoint, covering
    for r in range(world):
        shard = shard_order(order, r, world)
        assert np.array_equal(shard, order[positions[r]])
        assert torch.equal(shard_order(torch.from_numpy(order), r, world), torch.from_numpy(shard))
    # batch j of all ranks together is batch j of the order at world x the per-rank batch
    local = 8
    for j, sl in enumerate(batch_slices(len(order) // world, local)[:-1]):
        together = np.sort(np.concatenate([shard_order(order, r, world)[sl] for r in range(world)]))
        assert np.array_equal(together, np.sort(order[j * local * world : (j + 1) * local * world]))


def test_one_process_keeps_the_order_itself() -> None:
    order = np.arange(10)
    assert shard_order(order, 0, 1) is order
    dist = Distributed()
    assert dist.shard(order) is order and dist.stream(3) == 3 and not dist.active


def test_batch_size_is_global_and_must_divide() -> None:
    assert per_rank_batch(64, 1) == 64 and per_rank_batch(64, 2) == 32 and per_rank_batch(96, 3) == 32
    with pytest.raises(ConfigError, match=r"--batch-size 33 is the global batch .* 2 processes"):
        per_rank_batch(33, 2)
    with pytest.raises(ConfigError, match="leaves 1 record per process"):
        per_rank_batch(2, 2)


def test_strip_launch_options_and_peer_errors() -> None:
    argv = ["train", "ssl", "--nproc", "2", "--epochs", "1", "--nproc=3", "--nnodes", "2", "--node-rank=1"]
    argv += ["--rdzv-endpoint", "h:1", "--seed", "3"]
    assert strip_launch_options(argv) == ["train", "ssl", "--epochs", "1", "--seed", "3"]
    exc = RuntimeError("[/x/gloo/pair.cc:553] Connection closed by peer [127.0.0.1]:1928. This is long")
    assert str(peer_error(exc, 1)) == (
        "rank 1: lost contact with another process (it failed or was stopped): "
        "Connection closed by peer [127.0.0.1]:1928"
    )
    assert peer_error(ValueError("unrelated"), 0) is None


# ------------------------------------------------------------------ two gloo processes in-test


def _worker(rank: int, world: int, store: str) -> None:
    import torch.distributed as td
    from torch import nn

    from ecgcli.ssl import BYOL, nt_xent_loss

    torch.set_num_threads(1)
    td.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        dist = Distributed(rank, world, rank, torch.device("cpu"), "gloo", td.new_group(backend="gloo"))
        # NT-Xent with the gather hook: the mean of the per-rank losses is the global batch's
        # loss, and the gradients (averaged as DDP does) are the global batch's gradients
        gen = torch.Generator().manual_seed(0)
        z1, z2 = (torch.randn(8, 5, generator=gen, dtype=torch.float64) for _ in range(2))
        full1, full2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        expected = nt_xent_loss(full1, full2, 0.5)
        expected.backward()
        n = 8 // world
        rows = slice(rank * n, (rank + 1) * n)
        l1, l2 = z1[rows].clone().requires_grad_(), z2[rows].clone().requires_grad_()
        local = nt_xent_loss(l1, l2, 0.5, gather=dist.gather)
        local.backward()
        assert abs(dist.mean(local) - expected.item()) < 1e-12
        assert torch.allclose(l1.grad / world, full1.grad[rows], atol=1e-12)
        assert torch.allclose(l2.grad / world, full2.grad[rows], atol=1e-12)

        # BYOL through DDP, different data per rank: online and EMA target stay identical
        torch.manual_seed(1)
        encoder = nn.Sequential(
            nn.Conv1d(12, 8, 5, padding=2),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
        )
        byol = BYOL(encoder, 8, 16, 8, base_tau=0.9)
        net = dist.wrap(byol, sync_bn=True)
        opt = torch.optim.Adam([p for p in byol.parameters() if p.requires_grad], 1e-2)
        data = torch.randn(2, 4, 12, 64, generator=torch.Generator().manual_seed(10 + rank))
        for step in range(2):
            opt.zero_grad()
            net(data[step], data[step].flip(-1)).backward()
            opt.step()
            byol.update_target(0.9)
        dist.sync_buffers(byol)
        flat = torch.cat([v.double().flatten() for v in byol.state_dict().values()])
        parts = [torch.zeros_like(flat) for _ in range(world)]
        td.all_gather(parts, flat)
        assert torch.equal(parts[0], parts[1])
        assert not torch.equal(
            byol.target_encoder[0].weight, byol.encoder[0].weight
        )  # the target lags: EMA, not a copy
    finally:
        td.destroy_process_group()


def test_gather_hook_equals_the_global_loss_and_byol_stays_in_sync(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, str(tmp_path / "store")), nprocs=2, join=True)


# ------------------------------------------------------------------ the real CLI, 2 processes


def _env(session_cache: Path, runs: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        ECG_CACHE_DIR=str(session_cache),
        ECG_RUNS_DIR=str(runs),
        ECG_DEVICE="cpu",
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def _ecg(args: list[str], env: dict[str, str], launcher: list[str] | None = None):
    cmd = [sys.executable, *(launcher or []), "-m", "ecgcli", *args]
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    return out, time.perf_counter() - t


# fp32 spelled out: on a CPU with native bf16, `--precision auto` would train in bf16, and these
# tests compare processes and nodes to a relative 1e-6
SUPERVISED = [
    "--epochs", "1", "--batch-size", "32", "--label-fraction", "1", "--signal-length", "250",
    "--precision", "fp32",
]  # fmt: skip
SMALL_HEAD = ["--hidden-dim", "64", "--projection-dim", "32"]


def test_supervised_with_nproc_2(synth_root: Path, session_cache: Path, tmp_path: Path) -> None:
    from ecgcli.storage.checkpoint import load_classifier

    runs = tmp_path / "runs"
    args = [
        "train",
        "supervised",
        "--nproc",
        "2",
        "--data-root",
        str(synth_root),
        *SUPERVISED,
        "--name",
        "ddp",
    ]
    out, _ = _ecg(args, _env(session_cache, runs))
    assert out.returncode == 0, out.stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == ["ddp"]  # rank 1 wrote no run directory of its own
    assert out.stdout.count("run directory:") == 1  # one report, by rank 0 only
    model, meta = load_classifier(runs / "ddp" / "model.safetensors")
    assert model is not None and meta["kind"] == "classifier"
    want = {"world_size": 2, "global_batch_size": 32, "per_rank_batch_size": 16, "backend": "gloo"}
    for name in ("config.json", "metrics.json"):
        recorded = json.loads((runs / "ddp" / name).read_text())["distributed"]
        assert {k: recorded[k] for k in want} == want, name
    metrics = json.loads((runs / "ddp" / "metrics.json").read_text())
    assert metrics["test"]["n"] > 0 and np.isfinite(metrics["history"][0]["train_loss"])


def test_simclr_under_torchrun_then_a_2_process_probe(
    synth_root: Path, session_cache: Path, tmp_path: Path
) -> None:
    from ecgcli.storage.checkpoint import load_encoder

    runs = tmp_path / "runs"
    args = ["train", "ssl", "--method", "simclr", "--data-root", str(synth_root), "--epochs", "1"]
    args += ["--precision", "fp32"]
    args += ["--batch-size", "32", "--signal-length", "250", "--hidden-dim", "64", "--projection-dim", "32"]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    out, _ = _ecg([*args, "--name", "simclr"], _env(session_cache, runs), launcher)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == ["simclr"]
    encoder, meta = load_encoder(runs / "simclr" / "model.safetensors")
    assert encoder is not None and meta["ssl"]["method"] == "simclr"
    metrics = json.loads((runs / "simclr" / "metrics.json").read_text())
    assert metrics["distributed"]["world_size"] == 2 and metrics["distributed"]["global_batch_size"] == 32
    assert metrics["distributed"]["per_rank_batch_size"] == 16
    assert metrics["distributed"]["batchnorm"] == "per rank"  # SyncBatchNorm is CUDA-only
    assert np.isfinite(metrics["history"][0]["train_loss"]) and "probe_auroc" in metrics["history"][0]
    # a linear probe of that encoder, 2 processes: DDP must leave the frozen encoder out
    args = ["finetune", "--nproc", "2", "--ssl-checkpoint", str(runs / "simclr" / "model.safetensors")]
    args += ["--freeze-encoder", "--data-root", str(synth_root), *SUPERVISED, "--name", "probe"]
    out, _ = _ecg(args, _env(session_cache, runs))
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in runs.iterdir()) == ["probe", "simclr"]


def test_a_failing_rank_ends_the_run_quickly_and_it_resumes(
    synth_root: Path, session_cache: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run_dir = tmp_path / "runs" / "cut"
    args = ["train", "supervised", "--nproc", "2", "--data-root", str(synth_root), *SUPERVISED]
    args = [*args, "--epochs", "2", "--run-dir", str(run_dir)]  # the later --epochs wins
    # rank 1 raises before batch 2 of epoch 2, while rank 0 waits in the gradient all-reduce
    out, seconds = _ecg(args, _env(session_cache, runs, ECG_TEST_FAIL="1:2:2"))
    assert out.returncode != 0
    assert "injected failure on rank 1" in out.stderr and "Traceback" not in out.stderr
    assert seconds < 60, seconds  # far below the 120 s collective timeout: nothing hung
    assert not (run_dir / "metrics.json").exists() and (run_dir / "state" / "last.safetensors").is_file()
    out, _ = _ecg(
        ["train", "supervised", "--nproc", "2", "--resume", str(run_dir)], _env(session_cache, runs)
    )
    assert out.returncode == 0, out.stderr[-3000:]
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]


# ------------------------------------------------------------------ bad input, one line each


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nproc", "999"], "--nproc 999 is more than the"),
        (["--nproc", "2", "--batch-size", "33"], "--batch-size 33 is the global batch"),
    ],
)
def test_bad_nproc_is_a_one_line_error(synth_root: Path, args: list[str], message: str) -> None:
    for command in (["train", "supervised"], ["train", "ssl"]):
        result = runner.invoke(app, [*command, "--data-root", str(synth_root), "--device", "cpu", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len([ln for ln in result.output.splitlines() if ln.strip()]) == 1


def test_unavailable_backend_and_nproc_under_torchrun(synth_root: Path, monkeypatch) -> None:
    import torch.distributed as td

    args = ["train", "supervised", "--data-root", str(synth_root), "--device", "cpu", "--nproc", "2"]
    monkeypatch.setattr(td, "is_gloo_available", lambda: False)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "the gloo backend (CPU training) is not available" in result.output
    monkeypatch.undo()
    result = runner.invoke(app, args, env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    assert result.exit_code == 2 and "leave it out when running under torchrun" in result.output


# ------------------------------------------------------------------ two nodes, one process each


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(args: list[str], tmp_path: Path, session_cache: Path) -> list[Path]:
    """``args`` on two torchrun "nodes" of this machine (c10d rendezvous on 127.0.0.1, one gloo
    process each) that share no file: each has its own cache folder (node 1's starts empty, so
    its first process must build it) and runs folder. Returns the run directories written."""
    import shutil

    endpoint = f"127.0.0.1:{_free_port()}"
    procs = []
    for k in (0, 1):
        node = tmp_path / f"node{k}"
        cache = node / "cache"
        if k == 0:
            shutil.copytree(session_cache, cache)
        else:
            cache.mkdir(parents=True)
        # `ecg ... --nnodes` runs torchrun's agent in-process with torchrun_args(): the same as
        # `torchrun --nnodes 2 --node-rank K --rdzv-backend c10d --rdzv-endpoint ... -m ecgcli ...`
        nodes = ["--nnodes", "2", "--node-rank", str(k), "--rdzv-endpoint", endpoint]
        cmd = [sys.executable, "-m", "ecgcli", *args, *nodes]
        procs.append(
            subprocess.Popen(
                cmd, env=_env(cache, node / "runs"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-3000:]
    assert any((tmp_path / "node1" / "cache").iterdir())  # node 1 built its own cache
    return [d for k in (0, 1) for d in (tmp_path / f"node{k}" / "runs").glob("*")]


def _same_numbers(a: Path, b: Path) -> None:
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for ha, hb in zip(ma["history"], mb["history"], strict=True):
        for key in ("train_loss", "auroc", "f1", "probe_auroc", "probe_f1"):
            assert (key in ha) == (key in hb)
            if key in ha:
                assert ha[key] == pytest.approx(hb[key], rel=1e-6, abs=1e-9), key
    for section in ("test", "test_tuned", "final_probe"):
        if section in ma:
            for key, value in ma[section].items():
                if isinstance(value, float) and not key.endswith(("share", "seconds", "per_s")):
                    assert value == pytest.approx(mb[section][key], rel=1e-6, abs=1e-9), (section, key)
    assert ma["distributed"]["world_size"] == mb["distributed"]["world_size"] == 2


@pytest.mark.parametrize(
    "command",
    [
        ["train", "supervised", *SUPERVISED],
        ["train", "ssl", "--method", "simclr", *SUPERVISED[:4], "--signal-length", "250", *SMALL_HEAD],
    ],
    ids=["supervised", "simclr"],
)
def test_two_nodes_train_what_one_node_with_two_processes_trains(
    command: list[str], synth_root: Path, session_cache: Path, tmp_path: Path
) -> None:
    args = [*command, "--data-root", str(synth_root), "--name", "run"]
    out, _ = _ecg([*args, "--nproc", "2"], _env(session_cache, tmp_path / "one"))
    assert out.returncode == 0, out.stderr[-3000:]
    written = _two_nodes(args, tmp_path, session_cache)
    assert len(written) == 1  # global rank 0 alone wrote a run directory, on its own node
    _same_numbers(tmp_path / "one" / "run", written[0])


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (Nodes(2), "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
        (Nodes(2, 2, "h:29500"), "--node-rank must be between 0 and 1, got 2"),
        (Nodes(2, 0, "h"), "--rdzv-endpoint must be HOST:PORT"),
        (Nodes(1, 1), "--node-rank 1 needs --nnodes of at least 2"),
        (Nodes(0), "--nnodes must be at least 1"),
    ],
)
def test_bad_node_options_are_one_line_errors(nodes: Nodes, message: str) -> None:
    from ecgcli.train.launch import launch

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        launch(1, "cpu", ["ecg", "train", "supervised"], 32, nodes)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_torchrun_arguments_for_one_and_several_nodes() -> None:
    argv = ["ecg", "train", "ssl", "--nproc", "2", "--nnodes=2", "--epochs", "1"]
    assert torchrun_args(2, Nodes(), argv)[:3] == ["--standalone", "--nproc-per-node=2", "--max-restarts=0"]
    args = torchrun_args(2, Nodes(2, 1, "node0:29500"), argv)
    assert "--rdzv-backend=c10d" in args and "--rdzv-endpoint=node0:29500" in args
    assert "--node-rank=1" in args and "--rdzv-conf=is_host=false" in args and "--standalone" not in args
    assert args[-6:] == ["-m", "ecgcli", "train", "ssl", "--epochs", "1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nnodes", "2"], "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
        (
            ["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"],
            "--node-rank must be between 0 and 1",
        ),
        (["--node-rank", "1"], "--node-rank 1 needs --nnodes of at least 2"),
    ],
)
def test_bad_node_options_on_the_command_line(synth_root: Path, args: list[str], message: str) -> None:
    for command in (["train", "supervised"], ["train", "ssl"]):
        result = runner.invoke(app, [*command, "--data-root", str(synth_root), "--device", "cpu", *args])
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


def _node_worker(rank: int, world: int, store: str, root: str) -> None:
    """Each rank plays a node with its own filesystem (``root/node<rank>``)."""
    import torch.distributed as td

    td.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        dist = Distributed(rank, world, 0, torch.device("cpu"), "gloo", td.new_group(backend="gloo"))
        node = Path(root) / f"node{rank}"
        # a file only node 1 has (a checkpoint copied there) reaches node 0, byte for byte
        if rank == 1:
            (node / "ckpt").mkdir(parents=True)
            (node / "ckpt" / "a.bin").write_bytes(b"\x00weights\xff")
        dist.share_files([node / "ckpt" / "a.bin", node / "ckpt" / "missing.bin"])
        assert (node / "ckpt" / "a.bin").read_bytes() == b"\x00weights\xff"
        assert not (node / "ckpt" / "missing.bin").exists()  # nobody had it: left to the reader
        # every node's first process (local rank 0 here) builds its own copy first
        built = dist.local_first(lambda: (node / "cache").mkdir() or "built")
        assert built == "built" and (node / "cache").is_dir()

        # an error of any node's builder is raised on every rank
        def build() -> int:
            if rank == 1:
                raise ConfigError("node 1 cannot build")
            return 0

        with pytest.raises(ConfigError, match="node 1 cannot build"):
            dist.local_first(build)
    finally:
        td.destroy_process_group()


def test_files_reach_the_nodes_that_lack_them_and_each_node_builds_its_cache(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_node_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
