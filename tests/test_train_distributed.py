"""The same loop under ``accelerate launch`` with two CPU processes (gloo).

accelerate's MULTI_CPU launcher needs MPI; its torchrun launcher (``--multi_gpu``) starts the
processes, and on a machine without a GPU the loop asks accelerate for a CPU (gloo) group.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import yaml

from ecomvlm.train.toy import write_toy_dataset


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_split_the_data_and_agree_on_the_weights(tmp_path):
    write_toy_dataset(tmp_path / "toy", listings=8)
    recipe = {"model": {"vision": "tiny:siglip", "lm": "tiny:llama", "max_length": 512},
              "stages": [{"name": "mid", "lr": {"projector": 1e-3, "lm": 1e-3},
                          "data": [{"path": "stage2.jsonl"}, {"path": "stage3.jsonl"}],
                          "steps": 3, "batch_size": 2, "grad_accum": 2, "bf16": False,
                          "val_fraction": 0.2}]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "-m", "ecomvlm.train.run",
           "--recipe", str(tmp_path / "r.yaml"), "--data", str(tmp_path / "toy"),
           "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = json.loads((tmp_path / "out" / "mid" / "done.json").read_text())
    assert done["steps"] == 3 and done["samples"] == 3 * 2 * 2 * 2  # steps x batch x accum x 2
    state = json.loads(next((tmp_path / "out" / "mid" / "checkpoints").glob("step-*/"))
                       .joinpath("trainer_state.json").read_text())
    ranks = [r["data"]["sampler"] for r in state["ranks"]]
    assert len(ranks) == 2 and ranks[0]["offsets"] != ranks[1]["offsets"]  # disjoint shards
    assert (tmp_path / "out" / "mid" / "final" / "model.safetensors").is_file()
