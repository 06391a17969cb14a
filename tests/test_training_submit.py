"""``--slurm`` submission options: time limits, containers, and the command the job re-runs."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from jobs.submit import job_command, parse_container, parse_time


def test_time_limits():
    assert parse_time("90") == 5400
    assert parse_time("01:30:00") == 5400
    assert parse_time("10:30") == 630
    assert parse_time("1-02") == 93600 and parse_time("1-00:00:10") == 86410
    for bad in ("", "1h", "0", "1:2:3:4"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_time(bad)


def test_containers():
    c = parse_container("apptainer:/images/ligan.sif")
    assert (c.kind, c.image) == ("apptainer", "/images/ligan.sif")
    assert parse_container("") is None
    with pytest.raises(argparse.ArgumentTypeError, match="apptainer:IMAGE or enroot:IMAGE"):
        parse_container("docker:ligan")


def _parser(command: str):
    from setup.cli import build_parser
    from setup.config import load_settings

    parser = build_parser(load_settings({}))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    group = next(a for a in sub.choices[command]._actions
                 if isinstance(a, argparse._SubParsersAction))
    return parser, group


@pytest.mark.parametrize("command,argv,run_dir", [
    ("train", ["train", "stylegan2", "--data", "faces", "--run-dir", "runs/a", "--kimg", "5",
               "--no-mirror", "--precision", "float32"], "run_dir"),
    ("train", ["train", "encoder", "--bundle", "b", "--run-dir", "runs/e"], "run_dir"),
    ("train", ["train", "attributes", "--bundle", "b", "--run-dir", "runs/t"], "run_dir"),
    ("dataset", ["dataset", "build", "photos", "--out", "ds", "--resolution", "128"], "out"),
])
def test_the_job_reruns_the_same_command_locally(command, argv, run_dir):
    parser, group = _parser(command)
    args = parser.parse_args([*argv, "--slurm", "--gpus", "0", "--time", "30",
                              "--partition", "cpu", "--container", "apptainer:x.sif"])
    assert args.slurm and args.time == 1800 and args.container.image == "x.sif"
    cmd = job_command(args, group.choices[argv[1]], argv[:2])
    i = cmd.index(argv[0])
    assert cmd[i:i + 2] == argv[:2] and cmd[-1] == "--local"
    for flag in ("--slurm", "--gpus", "--time", "--partition", "--container"):
        assert flag not in cmd
    # Paths become absolute; every non-default option is passed on; defaults are left out.
    assert str(Path(getattr(args, run_dir)).resolve()) in cmd
    again = parser.parse_args(cmd[i:])
    for key, value in vars(args).items():
        if key not in ("slurm", "local", "gpus", "time", "partition", "container", "handler"):
            expected = value.resolve() if isinstance(value, Path) else value
            got = getattr(again, key)
            assert (got.resolve() if isinstance(got, Path) else got) == expected, key
    assert not again.slurm and again.local
