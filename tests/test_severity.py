"""The severity policy, one test per row of the README's pattern table.

Each pattern is a small training program of our own, run as a script under ``graphprobe render``
(the runner: real backward calls and optimizer steps, so what the user meant is known) or, where
the pattern is about probing from a debugger, under ``trace()`` and ``probe()`` in this frame.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from graphprobe import probe, trace
from graphprobe.cli import main

HEAD = """\
import torch
from torch import nn
import torch.nn.functional as F
torch.manual_seed(0)
"""


def _run(tmp_path: Path, capsys, body: str, name: str = "prog.py") -> dict:
    """Write ``body`` as a script, render it to JSON with the CLI in-process, and load the JSON."""
    script = tmp_path / name
    script.write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    out = tmp_path / "out.json"
    capsys.readouterr()
    rc = main(["render", str(script), "-o", str(out), "-q"])
    _, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out.read_text(encoding="utf-8"))


def _line_of(tmp_path: Path, text: str, name: str = "prog.py") -> int:
    lines = (tmp_path / name).read_text(encoding="utf-8").splitlines()
    hits = [i + 1 for i, ln in enumerate(lines) if text in ln]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def _live(d: dict) -> list[dict]:
    return [c for c in d["cuts"] if not c["ignored"]]


def _at(d: dict, line: int) -> dict:
    hits = [c for c in _live(d) if c["location"].endswith(f":{line}")]
    assert len(hits) == 1, [(c["kind"], c["location"], c["severity"]) for c in _live(d)]
    return hits[0]


# -- errors ----------------------------------------------------------------------------------

def test_numpy_round_trip_into_a_module_trained_by_another_loss_is_error(tmp_path, capsys):
    """The Cor bug: net1 is trained by loss1, and loss2 never reaches it."""
    d = _run(tmp_path, capsys, """
        net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
        opt1, opt2 = torch.optim.SGD(net1.parameters(), 0.1), torch.optim.SGD(net2.parameters(), 0.1)
        x = torch.rand(4, 3)
        for _ in range(2):
            h = net1(x)
            loss1 = F.mse_loss(h, torch.zeros(4, 3))
            h2 = torch.from_numpy(h.detach().numpy() * 0.5)  # CUT
            loss2 = F.mse_loss(net2(h2), torch.ones(4, 3))
            opt1.zero_grad(); opt2.zero_grad()
            loss1.backward()
            loss2.backward()
            opt1.step(); opt2.step()
    """)
    line = _line_of(tmp_path, "# CUT")
    cut = _at(d, line)
    assert cut["severity"] == "error" and cut["role"] == "module_input"
    assert cut["line"].startswith("h2 = torch.from_numpy(")
    assert "custom torch.autograd.Function" in cut["fix"] and "× 0.5" in cut["fix"]
    assert f"prog.py:{line}" in d["verdict"]
    assert d["causes"][0]["severity"] == "error" and d["causes"][0]["finding"] == {"list": "cuts", "index": 0}
    assert d["causes"][0]["starves"] == [{"module": "net1", "count": 2, "params": ["net1.weight", "net1.bias"],
                                          "optimizers": ["opt1"], "losses": ["loss2"]}]


PSEUDO_LIDAR = """
    depth_net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
    detector = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    opt_depth = torch.optim.Adam(depth_net.parameters(), 1e-3)
    opt_det = torch.optim.Adam(detector.parameters(), 1e-3)
    img, gt_depth, boxes = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), torch.rand(2, 3)
    for _ in range(2):
        depth = depth_net(img)
        depth_loss = F.l1_loss(depth, gt_depth)
        with torch.no_grad():  # WITH
            bev = torch.stack([depth[:, 0], depth[:, 0].clamp(min=0) ** 0.5], dim=1)  # STACK
        det_loss = F.mse_loss(detector(bev), boxes)
        loss = depth_loss + det_loss
        opt_depth.zero_grad(); opt_det.zero_grad()
        loss.backward()
        opt_depth.step(); opt_det.step()
"""


def test_pseudo_lidar_no_grad_around_bev_stacking_is_error_at_the_with_line(tmp_path, capsys):
    """End-to-End Pseudo-LiDAR: depth_loss trains the depth net, so nothing else is wrong."""
    d = _run(tmp_path, capsys, PSEUDO_LIDAR)
    with_line, stack_line = _line_of(tmp_path, "# WITH"), _line_of(tmp_path, "# STACK")
    cut = _at(d, with_line)
    assert cut["kind"] == "no_grad" and cut["severity"] == "error"
    assert cut["exit_location"].endswith(f":{stack_line}")
    assert cut["line"].startswith("with torch.no_grad():")
    assert f"out of the `with torch.no_grad():` at prog.py:{with_line}" in cut["fix"]
    assert {"loss": "det_loss", "params": [p for p in cut["blocked"][0]["params"]]} in cut["blocked"]
    assert f"prog.py:{with_line}" in d["verdict"] and not any(c["severity"] == "info" for c in _live(d))
    starved = d["causes"][0]["starves"]
    assert starved[0]["module"] == "depth_net" and starved[0]["count"] == 4
    assert starved[0]["optimizers"] == ["opt_depth"]


def test_optimizer_held_parameter_no_loss_reaches_is_error(tmp_path, capsys):
    d = _run(tmp_path, capsys, """
        net, head = nn.Linear(3, 3), nn.Linear(3, 1)
        opt = torch.optim.SGD(list(net.parameters()) + list(head.parameters()), 0.1)
        for _ in range(2):
            loss = net(torch.rand(2, 3)).sum()
            opt.zero_grad(); loss.backward(); opt.step()
    """)
    un = {x["name"]: x for x in d["detached"] if x["kind"] == "unreached"}
    assert set(un) == {"head.weight", "head.bias"}
    assert all(x["severity"] == "error" for x in un.values())
    assert d["causes"][0]["kind"] == "unreached" and d["causes"][0]["starves"][0]["module"] == "head"


# -- warnings --------------------------------------------------------------------------------

def test_explicit_detach_into_a_module_trained_by_its_own_loss_is_a_warning_with_both_readings(tmp_path, capsys):
    d = _run(tmp_path, capsys, """
        net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
        opt = torch.optim.SGD(list(net1.parameters()) + list(net2.parameters()), 0.1)
        x = torch.rand(4, 3)
        for _ in range(2):
            h = net1(x)
            loss1 = F.mse_loss(h, torch.zeros(4, 3))
            loss2 = F.mse_loss(net2(h.detach()), torch.ones(4, 3))  # CUT
            opt.zero_grad(); (loss1 + loss2).backward(); opt.step()
    """)
    cut = _at(d, _line_of(tmp_path, "# CUT"))
    assert cut["kind"] == "detach" and cut["severity"] == "warning"
    assert "layer-local training" in cut["reason"] and "Cor bug" in cut["reason"]
    assert "# graphprobe: ignore" in cut["fix"]
    assert d["findings"]["error"] == 0


def test_a_value_match_guess_is_at_most_a_warning(tmp_path, capsys):
    """float(v) loses the tag; a torch.tensor of the same value is linked as a guess only."""
    d = _run(tmp_path, capsys, """
        net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
        opt = torch.optim.SGD(list(net1.parameters()) + list(net2.parameters()), 0.1)
        x = torch.rand(4, 3)
        for _ in range(2):
            v = float(str(net1(x).mean().item()))
            scale = torch.tensor(v)
            loss = net2(x * scale).sum()
            opt.zero_grad(); loss.backward(); opt.step()
    """)
    guesses = [c for c in _live(d) if c["guess"]]
    assert len(guesses) == 1
    assert guesses[0]["severity"] == "warning" and "a guess" in guesses[0]["reason"]
    assert ("value match", None) in [(s["op"], s["location"]) for s in guesses[0]["chain"]]
    cause = [c for c in d["causes"] if c["finding"] == {"list": "cuts", "index": d["cuts"].index(guesses[0])}]
    assert cause[0]["severity"] == "warning" and cause[0]["guess"]


# -- info: loss arithmetic -----------------------------------------------------------------------

def test_baseline_advantage_item_is_info_and_repeats_collapse(tmp_path, capsys):
    """actor-critic: ``advantage = R - value.item()``, once per step of an episode."""
    d = _run(tmp_path, capsys, """
        body, actor, critic = nn.Linear(4, 8), nn.Linear(8, 2), nn.Linear(8, 1)
        params = [p for m in (body, actor, critic) for p in m.parameters()]
        opt = torch.optim.Adam(params, 1e-2)
        for _ in range(2):
            saved = []
            for t in range(5):
                h = torch.relu(body(torch.rand(1, 4)))
                probs = F.softmax(actor(h), -1)
                a = torch.multinomial(probs, 1)
                saved.append((torch.log(probs[0, a]), critic(h)[0]))
            policy_losses, value_losses = [], []
            for (log_prob, value), R in zip(saved, torch.rand(5)):
                advantage = R - value.item()  # CUT
                policy_losses.append(-log_prob * advantage)
                value_losses.append(F.smooth_l1_loss(value, torch.tensor([R])))
            opt.zero_grad()
            loss = torch.stack(policy_losses).sum() + torch.stack(value_losses).sum()
            loss.backward()
            opt.step()
    """)
    line = _line_of(tmp_path, "# CUT")
    cut = _at(d, line)
    assert cut["severity"] == "info" and cut["role"] == "loss_arithmetic" and cut["count"] == 5
    assert d["findings"]["error"] == 0 and d["findings"]["warning"] == 0
    assert d["causes"][0]["title"] == f"item cut 5× at prog.py:{line}"


def test_normaliser_loss_over_its_item_is_info(tmp_path, capsys):
    d = _run(tmp_path, capsys, """
        net = nn.Linear(3, 1)
        opt = torch.optim.SGD(net.parameters(), 0.1)
        for _ in range(2):
            raw = net(torch.rand(4, 3)).pow(2).mean()
            loss = raw / raw.item()  # CUT
            opt.zero_grad(); loss.backward(); opt.step()
    """)
    cut = _at(d, _line_of(tmp_path, "# CUT"))
    assert cut["severity"] == "info" and cut["kind"] == "item"
    assert d["findings"]["error"] == 0


def test_dqn_target_under_no_grad_is_info(tmp_path, capsys):
    d = _run(tmp_path, capsys, """
        q_net, target_net = nn.Linear(4, 2), nn.Linear(4, 2)
        target_net.load_state_dict(q_net.state_dict())
        opt = torch.optim.SGD(q_net.parameters(), 0.1)
        for _ in range(2):
            s, s2, r = torch.rand(8, 4), torch.rand(8, 4), torch.rand(8)
            with torch.no_grad():
                target = r + 0.99 * target_net(s2).max(1).values
            q = q_net(s).max(1).values
            loss = F.mse_loss(q, target)
            opt.zero_grad(); loss.backward(); opt.step()
    """)
    assert d["findings"]["error"] == 0 and d["findings"]["warning"] == 0
    assert all(c["severity"] == "info" for c in d["cuts"])


def test_a_weight_from_another_module_is_info(tmp_path, capsys):
    d = _run(tmp_path, capsys, """
        net, gate = nn.Linear(3, 1), nn.Linear(3, 1)
        opt = torch.optim.SGD(list(net.parameters()) + list(gate.parameters()), 0.1)
        for _ in range(2):
            x = torch.rand(4, 3)
            g = torch.sigmoid(gate(x)).mean()
            w = g.item()  # CUT
            loss = w * net(x).pow(2).mean() + (g - 0.5) ** 2
            opt.zero_grad(); loss.backward(); opt.step()
    """)
    cut = _at(d, _line_of(tmp_path, "# CUT"))
    assert cut["severity"] == "info" and cut["role"] == "loss_arithmetic"
    assert d["findings"]["error"] == 0


# -- info: intended detaches ------------------------------------------------------------------------

def test_truncated_backprop_inside_one_module_is_info():
    """word_language_model's repackage_hidden: the hidden state is detached between chunks."""
    torch.manual_seed(0)
    rnn = nn.GRU(3, 4, batch_first=True)
    opt = torch.optim.SGD(rnn.parameters(), 0.1)
    with trace():
        out_a, hidden = rnn(torch.rand(2, 5, 3))
        loss_a = out_a.pow(2).mean()
        hidden = hidden.detach()
        out_b, _ = rnn(torch.rand(2, 5, 3), hidden)
        loss_b = out_b.pow(2).mean()
        r = probe(loss_a, loss_b)
    assert len(r.cuts) == 1 and r.cuts[0]["kind"] == "detach"
    assert r.cuts[0]["severity"] == "info" and r.ok
    del opt


GAN = """
    G = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 4))
    D = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optD = torch.optim.Adam(D.parameters(), 1e-3)
    optG = torch.optim.Adam(G.parameters(), 1e-3)
    bce = nn.BCEWithLogitsLoss()
    for _ in range(2):
        real, noise = torch.rand(8, 4), torch.rand(8, 2)
        fake = G(noise)
        D.zero_grad()
        errD_real = bce(D(real), torch.ones(8, 1))
        errD_real.backward()
        errD_fake = bce(D(fake.detach()), torch.zeros(8, 1))  # DSTEP
        errD_fake.backward()
        optD.step()
        G.zero_grad()
        errG = bce(D(fake), torch.ones(8, 1))  # GSTEP
        errG.backward()
        optG.step()
"""


def test_gan_discriminator_step_detach_is_info(tmp_path, capsys):
    d = _run(tmp_path, capsys, GAN)
    cut = _at(d, _line_of(tmp_path, "# DSTEP"))
    assert cut["severity"] == "info" and cut["kind"] == "detach"
    assert d["findings"]["error"] == 0 and d["findings"]["warning"] == 0


def test_gan_injected_detach_in_generator_loss_is_the_cause_and_the_d_step_stays_info(tmp_path, capsys):
    """dcgan: a detach injected in the generator loss starves G; the D step's detach is intended."""
    d = _run(tmp_path, capsys, GAN.replace("errG = bce(D(fake)", "errG = bce(D(fake.detach())"))
    g_line, d_line = _line_of(tmp_path, "# GSTEP"), _line_of(tmp_path, "# DSTEP")
    assert _at(d, g_line)["severity"] == "error"
    assert _at(d, d_line)["severity"] == "info"
    assert f"prog.py:{g_line}" in d["verdict"] and f"prog.py:{d_line}" not in d["verdict"]
    top = d["causes"][0]
    assert top["location"].endswith(f":{g_line}") and top["starves"][0]["module"] == "G"
    un = [x for x in d["detached"] if x["kind"] == "unreached"]
    assert un and all(d["cuts"][x["cut"]]["location"].endswith(f":{g_line}") for x in un)


def test_detach_whose_upstream_reaches_the_loss_by_another_route_is_info():
    torch.manual_seed(0)
    net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
    with trace():
        h = net1(torch.rand(4, 3))
        loss = net2(h.detach()).sum() + net2(h).sum()
        r = probe(loss)
    assert [c["severity"] for c in r.cuts] == ["info"] and r.ok


# -- not an error: rebuilt leaves whose gradient is used -----------------------------------------------

def test_wgan_gp_interpolate_made_to_require_grad_is_not_an_error(tmp_path, capsys):
    d = _run(tmp_path, capsys, """
        G, D = nn.Linear(2, 4), nn.Linear(4, 1)
        optD = torch.optim.Adam(D.parameters(), 1e-3)
        for _ in range(2):
            real, fake = torch.rand(8, 4), G(torch.rand(8, 2))
            eps = torch.rand(8, 1)
            interp = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
            out = D(interp)
            grads = torch.autograd.grad(out.sum(), interp, create_graph=True)[0]
            gp = ((grads.norm(2, dim=1) - 1) ** 2).mean()
            lossD = D(fake.detach()).mean() - D(real).mean() + 10 * gp
            optD.zero_grad(); lossD.backward(); optD.step()
    """)
    assert d["findings"]["error"] == 0, [(c["kind"], c["severity"], c["reason"]) for c in d["cuts"]]
    leaves = [x for x in d["detached"] if x["kind"] == "reentry_leaf"]
    assert all(x["severity"] == "info" for x in leaves)


def test_gradient_relay_is_not_an_error(tmp_path, capsys):
    d = _run(tmp_path, capsys, """
        enc, dec = nn.Linear(3, 4), nn.Linear(4, 1)
        opt = torch.optim.SGD(list(enc.parameters()) + list(dec.parameters()), 0.1)
        for _ in range(2):
            h = enc(torch.rand(2, 3))
            h_d = h.detach().requires_grad_()
            loss = dec(h_d).sum()
            opt.zero_grad()
            loss.backward()
            h.backward(h_d.grad)
            opt.step()
    """)
    assert d["findings"]["error"] == 0, [(c["kind"], c["severity"], c["reason"]) for c in d["cuts"]]


# -- the debugger path: probe() without trace() ---------------------------------------------------------

def test_case4_without_trace_is_not_green_and_guesses_the_link_from_a_saved_tensor(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    x = torch.ones(2, 3) * 0.2
    tmp = net1(x)
    loss1 = nn.MSELoss()(tmp, torch.ones(2, 3) * 0.5)
    tmp = torch.from_numpy(tmp.detach().numpy() * 0.5)
    tmp.requires_grad_(True)
    loss2 = nn.MSELoss()(net2(tmp), torch.ones(2, 3))
    r = probe(loss1, loss2)
    assert "every known parameter gets a gradient" not in r.verdict()
    guess = [c for c in r.cuts if c["guess"]]
    assert len(guess) == 1
    c = guess[0]
    assert c["kind"] == "value_match" and c["severity"] == "warning"
    assert c["from"]["module"] == "net1" and c["to"]["module"] == "net2"
    assert c["blocked"] == [{"loss": "loss2", "params": ["net1.weight", "net1.bias"]}]
    assert "0.5·x" in c["reason"] and "guess" in c["reason"]
    assert r.model.cut_edges and r.model.cut_edges[0][2] == r.cuts.index(c)
    assert "value_match cut" in r.verdict() and "loss2 does not reach net1.weight" in r.verdict()


def test_rebuilt_leaf_with_no_saved_match_says_the_graph_is_cut_there(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    tmp = net1(torch.rand(2, 3))
    loss1 = tmp.sum()
    leaf = torch.tensor(tmp.detach().numpy() ** 2, requires_grad=True)  # not affine: no guess
    loss2 = net2(leaf).sum()
    r = probe(loss1, loss2)
    assert not [c for c in r.cuts if c["guess"]]
    v = r.verdict()
    assert "leaf is a rebuilt leaf, so the graph is cut there" in v and "loss2" in v and "trace()" in v


def test_no_text_line_over_160_characters(tmp_path, capsys):
    d = _run(tmp_path, capsys, PSEUDO_LIDAR)
    del d
    script = tmp_path / "prog.py"
    capsys.readouterr()
    rc = main(["check", str(script)])
    out, _ = capsys.readouterr()
    assert rc == 1
    assert max(len(line) for line in out.splitlines()) <= 160
    assert out.index("Causes") < out.index("[error]")


def test_a_loss_term_added_as_a_constant_is_error(tmp_path, capsys):
    """The VAE injection: ``KLD = (...).item()`` then ``BCE + KLD`` trains nothing through KLD."""
    d = _run(tmp_path, capsys, """
        enc, dec = nn.Linear(6, 4), nn.Linear(2, 6)
        opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), 1e-3)
        for _ in range(2):
            x = torch.rand(5, 6)
            h = enc(x)
            mu, logvar = h[:, :2], h[:, 2:]
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            BCE = F.mse_loss(dec(z), x, reduction="sum")
            KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()).item()  # CUT
            loss = BCE + KLD
            opt.zero_grad(); loss.backward(); opt.step()
    """)
    line = _line_of(tmp_path, "# CUT")
    cut = _at(d, line)
    assert cut["severity"] == "error" and cut["role"] == "loss_term"
    assert f"prog.py:{line}" in d["verdict"]
    assert "keep the tensor" in cut["fix"]


def test_no_grad_around_a_helper_in_another_file_points_at_the_with_line(tmp_path, capsys):
    """The e2e code's voxelizer runs in its own file, called from inside the caller's block."""
    (tmp_path / "voxel.py").write_text(textwrap.dedent("""
        import torch
        def voxelize(d):
            a = d[:, 0] * 2.0  # OP
            return torch.stack([a, a + 1], 1)
    """), encoding="utf-8")
    d = _run(tmp_path, capsys, """
        from voxel import voxelize
        depth_net, det = nn.Linear(4, 4), nn.Linear(4, 1)
        opt = torch.optim.Adam(list(depth_net.parameters()) + list(det.parameters()))
        for _ in range(2):
            depth = depth_net(torch.rand(3, 4)).view(3, 2, 2)
            depth_loss = depth.pow(2).mean()
            with torch.no_grad():  # WITH
                bev = voxelize(depth)
            det_loss = det(bev.reshape(3, 4)).sum()
            opt.zero_grad()
            (depth_loss + det_loss).backward()
            opt.step()
    """)
    with_line = _line_of(tmp_path, "# WITH")
    (cut,) = _live(d)
    assert cut["severity"] == "error" and cut["location"].endswith(f"prog.py:{with_line}")
    # The op ran in a helper the block called: the recorder locates the cut at the with line itself.
    assert f"prog.py:{with_line}" in d["verdict"]
