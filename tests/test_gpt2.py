"""A real model written by others: Hugging Face ``transformers``' GPT-2, built from a tiny config.

No download, no tokenizer, no hub (``HF_HUB_OFFLINE=1``). ``transformers`` is in the ``test``
extra of its own (``pip install -e '.[gpt2]'``, 129 MB with its dependencies, so not in ``test``);
without it these tests skip with a one-line reason (``.ci/run`` installs it, so CI runs them). Every reachability claim is checked against ``torch.autograd.grad(...,
allow_unused=True)``.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

pytest.importorskip("transformers", reason="GPT-2 tests need transformers: pip install -e '.[gpt2]'")

from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from graphprobe import probe, trace
from graphprobe.cli import main

hf_logging.set_verbosity_error()

ROOT = Path(__file__).resolve().parent.parent
VOCAB = 100
TIED = "model.transformer.wte.weight"
_SVG = "{http://www.w3.org/2000/svg}"


def _gpt2(n_layer: int = 2) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=n_layer, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def _ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))


def _oracle(loss: torch.Tensor, model: torch.nn.Module) -> set[str]:
    """The parameters ``loss`` really sends gradient to, named as the report names them."""
    named = list(model.named_parameters())  # tied weights come once, under their first name
    grads = torch.autograd.grad(loss, [p for _, p in named], retain_graph=True, allow_unused=True)
    return {f"model.{n}" for (n, _), g in zip(named, grads) if g is not None}


def _texts(svg: str) -> list[str]:
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{_SVG}text")]


@pytest.fixture(scope="module")
def model() -> GPT2LMHeadModel:
    return _gpt2()


def test_lm_loss_reaches_every_parameter(model: GPT2LMHeadModel) -> None:
    input_ids = _ids()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # noqa: F841 (named by probe)
    loss = model(input_ids, labels=input_ids).loss
    r = probe(loss)

    trainable = {f"model.{n}" for n, p in model.named_parameters() if p.requires_grad}
    assert len(trainable) == 28
    assert _oracle(loss, model) == trainable
    assert set(r.reaches["loss"]) == trainable
    assert {p["name"] for p in r.params} == trainable
    assert all(p["reached_by"] == ["loss"] and p["optimizers"] == ["opt"] for p in r.params)
    assert r.ok and r.counts() == {"error": 0, "warning": 0, "info": 0}
    assert r.cuts == [] and r.detached == [] and r.errors == [] and r.frozen == []
    assert len(r.components) == 1
    assert r.verdict() == "1 loss, 1 component: every known parameter gets a gradient"


def test_names_follow_the_frame_variable(model: GPT2LMHeadModel) -> None:
    input_ids = _ids()
    loss = model(input_ids, labels=input_ids).loss
    names = {p["name"] for p in probe(loss).params}
    for name in ("model.transformer.h.0.attn.c_attn.weight", "model.transformer.h.1.mlp.c_proj.bias",
                 "model.transformer.wpe.weight", "model.transformer.ln_f.weight"):
        assert name in names

    gpt = model  # another variable holding the same module: names follow it
    loss = gpt(input_ids, labels=input_ids).loss
    r = probe(loss, params={"gpt": gpt})
    assert "gpt.transformer.h.0.attn.c_attn.weight" in {p["name"] for p in r.params}


def test_tied_lm_head_is_one_parameter_reached_twice(model: GPT2LMHeadModel) -> None:
    """``lm_head.weight`` *is* ``transformer.wte.weight``: one parameter, one node, two uses."""
    assert model.lm_head.weight is model.transformer.wte.weight
    input_ids = _ids()
    with trace():
        loss = model(input_ids, labels=input_ids).loss
        r = probe(loss)
    names = [p["name"] for p in r.params]
    assert names.count(TIED) == 1
    assert "model.lm_head.weight" not in names  # not a second, phantom parameter
    assert not any("lm_head" in d["name"] for d in r.detached)
    (tied,) = [p for p in r.params if p["name"] == TIED]
    assert tied["shape"] == [VOCAB, 32] and tied["reached_by"] == ["loss"]

    # The one node feeds both the token embedding and the LM head.
    d = r.to_dict()
    modules = {n["id"]: n["module"] for n in d["nodes"]}
    users = {modules[e["target"]] for e in d["edges"] if e["source"] == tied["node"]}
    assert "model.lm_head" in users and "model.transformer.wte" in users, users
    param_nodes = [n for n in d["nodes"] if n["kind"] == "param"]
    assert len(param_nodes) == 28


def test_detached_hidden_states_cut_the_transformer_off(model: GPT2LMHeadModel) -> None:
    input_ids = _ids()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # noqa: F841 (holds every parameter)
    with trace():
        hidden = model.transformer(input_ids).last_hidden_state
        hidden = hidden.detach()  # the deliberate cut
        logits = model.lm_head(hidden)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), input_ids.reshape(-1))
        r = probe(loss)
    detach_line = _line_of("hidden = hidden.detach()")

    # The oracle: only the tied weight (through lm_head) gets a gradient.
    assert _oracle(loss, model) == {TIED}
    assert r.reaches == {"loss": [TIED]}
    upstream = {f"model.{n}" for n, _ in model.named_parameters()} - {TIED}
    assert len(upstream) == 27
    unreached = {d["name"]: d for d in r.detached if d["kind"] == "unreached"}
    assert set(unreached) == upstream
    assert all(d["severity"] == "error" and d["optimizers"] == ["opt"] for d in unreached.values())
    assert not r.ok

    (cut,) = r.cuts
    assert cut["kind"] == "detach"
    assert cut["location"].endswith(f"test_gpt2.py:{detach_line}")
    assert cut["from"]["module"] == "model.transformer" and cut["to"]["module"] == "model.lm_head"
    assert {p for b in cut["blocked"] for p in b["params"]} == upstream
    assert f"detach cut at test_gpt2.py:{detach_line}" in r.verdict()


def test_detached_hidden_states_without_a_trace_still_show_unreached(model: GPT2LMHeadModel) -> None:
    """Without ``trace()`` the cut itself is invisible, but what it starves is not."""
    input_ids = _ids()
    hidden = model.transformer(input_ids).last_hidden_state.detach()
    logits = model.lm_head(hidden)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), input_ids.reshape(-1))
    r = probe(loss)
    assert r.reaches == {"loss": [TIED]}
    assert len([d for d in r.detached if d["kind"] == "unreached"]) == 27
    assert r.cuts == []


def _line_of(text: str) -> int:
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    (n,) = [i for i, line in enumerate(lines, 1) if line.strip().startswith(text)]
    return n


def test_svg_small_model_collapsed_on_request(model: GPT2LMHeadModel) -> None:
    input_ids = _ids()
    with trace():
        loss = model(input_ids, labels=input_ids).loss
        r = probe(loss)
    full = r.to_svg()
    small = r.to_svg(budget=100)
    assert "collapsed view" not in full and "collapsed view" in small
    assert len(small) < len(full) / 2
    texts = _texts(small)
    assert any("of 159 nodes drawn" in t for t in texts), texts[:3]
    for module in ("model.transformer.h.0.attn.c_attn", "model.transformer.h.1.mlp.c_proj",
                   "model.lm_head", "model.transformer.wte"):
        assert module in texts, module
    assert "loss" in texts


@pytest.mark.slow  # lays out GPT-2 (3.5 s)
def test_svg_deep_model_collapses_by_itself() -> None:
    """24 blocks: ~1,700 autograd nodes, over the 200-node budget, so the picture folds them."""
    model = _gpt2(n_layer=24)
    input_ids = _ids()
    with trace():
        loss = model(input_ids, labels=input_ids).loss
        r = probe(loss)
    assert len(r.model) > 1500
    assert len(r.reaches["loss"]) == 2 + 24 * 12 + 2
    svg = r.to_svg()
    texts = _texts(svg)
    assert any("collapsed view" in t for t in texts)
    assert "model.transformer.h.0-23 ×24" in texts  # the 24 blocks are one block
    assert len(ET.fromstring(svg).findall(f".//{_SVG}g[@class='node']")) < 40
    # A depth asked for opens the folded block into its parts.
    assert "model.transformer.h.0-23 ×24 › attn.c_attn" in _texts(r.to_svg(depth=6))


def test_cli_renders_the_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "gpt2.json"
    assert main(["render", "samples/gpt2_tiny.py", "-o", str(out), "-q"]) == 0
    d = json.loads(out.read_text())
    assert d["verdict"] == "1 loss, 1 component: every known parameter gets a gradient"
    assert d["cuts"] == [] and d["detached"] == []
    assert len(d["reaches"]["loss"]) == 28 and TIED in d["reaches"]["loss"]
    assert d["losses"][0]["location"] == "samples/gpt2_tiny.py:29"
    capsys.readouterr()
