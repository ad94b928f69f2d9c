"""graphprobe on one CPU training step of the End-to-End Pseudo-LiDAR code (PIXOR e2e).

    python benchmarks/realworld/pseudo_lidar_e2e.py /tmp/e2e            # the four forms
    python benchmarks/realworld/pseudo_lidar_e2e.py /tmp/e2e numpy      # one of them
    (a checkout: git -C <mirror> archive HEAD | tar -x -C /tmp/e2e)

For each form it writes a driver, our own code, that imports the checkout's PIXOR/ code at run
time and runs one step of ``PIXOR/train_pixor_e2e.py``'s loop (its lines 496-537): the stereo
depth net ``PSMNet`` (depth_models/stackhourglass_fix.py) through the script's own
``forward_depth_model``; per sample, ``utils_func.torchCalib`` over the repo's
``data.kitti_util.Calibration`` (read from a synthetic KITTI calib file), the script's
``depth_to_pcl`` and ``calib.lidar_to_rect``; the BEV voxelizer
``kitti_process_detection.gen_feature_diffused_tensor``; ``torch.stack`` of the BEV maps;
``PixorNet_Fusion`` (network/pixor_fusion.py); the script's ``compute_loss``;
``loss = depth_loss + 0.1 * det_loss``; one backward; both optimizers step. A small stereo pair
(256 x 256, the least PSMNet's spatial pyramid takes), a small BEV grid (700 x 64: the paper's 70 m of depth, 6.4 m wide instead of 80),
synthetic labels and fusion indices.

The forms:

- ``paper``: as the paper does it. Expected: no error finding; det_loss reaches the depth net.
- ``numpy``: the depth back-projected through numpy, with the repo's own
  ``Calibration.project_image_to_rect``. Expected: an error cut; det_loss does not reach it.
- ``no_grad``: ``with torch.no_grad():`` around the voxelizer. Expected: the same.
- ``data``: a ``.data`` slice of the depth map. Expected: the same.

Each driver runs under the oracle and under ``python -m graphprobe render <driver> -o out.json``;
``check``'s exit status (1 exactly when a finding has severity error) is read from the report's
``findings`` counts, to run each form once. CPU only: the repo is written for CUDA
(``device='cuda'``, ``.cuda()``, ``torch.cuda.FloatTensor``), so ``site/gp_cpu_shim.py`` maps
those to the CPU for both runs; ``torch_scatter`` (a compiled op) is replaced by a pure-torch
``scatter_mean`` (``stubs_e2e/torch_scatter``); the ResNet-18 image branch of PIXOR is built
with ``resnet_pretrained=False`` (nothing can be downloaded).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

STUBS_E2E = os.path.join(common.HERE, "stubs_e2e")

# fu = fv = 4000 px, principal point at the image centre, baseline 0.54 m (KITTI's): at 80 m a
# 256-px-wide image spans +-2.6 m, inside the 6.4 m wide BEV grid. Lidar x forward, y left, z up.
CALIB = """\
P0: 4000 0 128 0 0 4000 128 0 0 0 1 0
P1: 4000 0 128 -2160 0 4000 128 0 0 0 1 0
P2: 4000 0 128 0 0 4000 128 0 0 0 1 0
P3: 4000 0 128 -2160 0 4000 128 0 0 0 1 0
R0_rect: 1 0 0 0 1 0 0 0 1
Tr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0
Tr_imu_to_velo: 1 0 0 0 0 1 0 0 0 0 1 0
"""

HEAD = '''\
# A driver written by graphprobe's benchmarks/realworld/pseudo_lidar_e2e.py (form: {form}).
# It imports the End-to-End Pseudo-LiDAR code from a checkout and runs one training step the way
# PIXOR/train_pixor_e2e.py's loop does (its lines 496-537), on synthetic data, on the CPU.
import sys
import types

sys.path.insert(0, {pixor!r})

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

import train_pixor_e2e as tp  # the paper's training script: forward_depth_model, depth_to_pcl, compute_loss
import utils_func
from data.kitti_util import Calibration
from depth_models.stackhourglass_fix import PSMNet
from kitti_process_detection import gen_feature_diffused_tensor, get_3D_global_grid_extended
from network.pixor_fusion import PixorNet_Fusion

torch.manual_seed(0)
B, H, W = 2, 256, 256  # PSMNet's spatial pyramid pools 64 x 64 at 1/4 scale, then batch-norms: B >= 2
Z, X = 700, 64  # the BEV grid: 70 m deep (as the paper), 6.4 m wide (the paper: 80 m)
args = types.SimpleNamespace(batch_size=B, diffused=True)
calib_np = Calibration({calib!r})

pixor = nn.DataParallel(PixorNet_Fusion(35, groupnorm=True, resnet_type="resnet18", image_downscale=1,
                                        resnet_chls=32, resnet_pretrained=False))
optimizer = optim.RMSprop(pixor.parameters(), lr=5e-5, momentum=0.9, weight_decay=1e-4)
depth_model = nn.DataParallel(PSMNet(maxdepth=80, maxdisp=192, down=4))  # down: the script's --depth_down (default 2)
depth_optimizer = optim.Adam(depth_model.parameters(), lr=1e-3, betas=(0.9, 0.999))
grid_3D_extended = get_3D_global_grid_extended(Z, X, 35).float()
class_criterion = nn.BCELoss(reduction="none")
reg_criterion = nn.SmoothL1Loss(reduction="none")
train_metric = utils_func.Metric()

# A synthetic batch: the stereo pair, a ground-truth depth map, f * baseline, the RGB image and
# the fusion indices the data loader would give (points in the first BEV columns), labels.
imgL, imgR = torch.randn(B, 3, H, W), torch.randn(B, 3, H, W)
depth_map = torch.rand(B, H, W) * 60 + 5
f = torch.full((B,), 4000.0 * 0.54)
images = imgL
n_fuse = 64
bev_index = torch.stack([torch.rand(B, n_fuse) * 0.5 - 36.0, torch.rand(B, n_fuse) * 3.0 - 1.0,
                         torch.rand(B, n_fuse) * 60.0 + 1.0], dim=2)
img_index = torch.stack([torch.randint(0, W, (B, n_fuse)), torch.randint(0, H, (B, n_fuse))], dim=2).float()
class_labels = (torch.rand(B, Z // 4, X // 4) > 0.95).float()
reg_labels = torch.randn(B, 6, Z // 4, X // 4)
h_shift = torch.zeros(B)

pixor.train()
depth_model.train()
'''

STEP = '''\
depth_loss, depth_map = tp.forward_depth_model(imgL, imgR, depth_map, f, train_metric, depth_model)
inputs = []
for i in range(depth_map.shape[0]):
    calib = utils_func.torchCalib(calib_np, h_shift[i])
{per_sample}
    inputs.append(voxel)
inputs = torch.stack(inputs)
class_outs, reg_outs = pixor(inputs, images, img_index, bev_index)
class_outs = class_outs.squeeze(1)
class_loss, reg_loss, det_loss = tp.compute_loss(0, class_outs, reg_outs, class_labels, reg_labels,
                                                 class_criterion, reg_criterion, args)
optimizer.zero_grad()
depth_optimizer.zero_grad()
loss = depth_loss + 0.1 * det_loss
loss.backward()
optimizer.step()
depth_optimizer.step()
print("step done: depth_loss %.3f det_loss %.3f" % (depth_loss.item(), det_loss.item()))
'''

PAPER = '''\
    depth = depth_map[i][-H:, :W]
    ptc = tp.depth_to_pcl(calib, depth, max_high=1.)
    ptc = calib.lidar_to_rect(ptc[:, 0:3])
    voxel = gen_feature_diffused_tensor(ptc, Z, X, grid_3D_extended, diffused=args.diffused)'''

FORMS: dict[str, tuple[str, str, bool]] = {
    # name: (per-sample code, the line that cuts (None: no cut), det_loss should reach the depth net)
    "paper": (PAPER, "", True),
    "numpy": ('''\
    depth = depth_map[i][-H:, :W]
    d = depth.detach().numpy()  # the back-projection in numpy, with the repo's Calibration
    c, r = np.meshgrid(np.arange(d.shape[1]), np.arange(d.shape[0]))
    uv_depth = np.stack([c.ravel(), r.ravel(), d.ravel()], axis=1)
    ptc = torch.from_numpy(calib_np.project_image_to_rect(uv_depth)).float()
    voxel = gen_feature_diffused_tensor(ptc, Z, X, grid_3D_extended, diffused=args.diffused)''',
              "d = depth.detach().numpy()", False),
    "no_grad": ('''\
    depth = depth_map[i][-H:, :W]
    ptc = tp.depth_to_pcl(calib, depth, max_high=1.)
    ptc = calib.lidar_to_rect(ptc[:, 0:3])
    with torch.no_grad():
        voxel = gen_feature_diffused_tensor(ptc, Z, X, grid_3D_extended, diffused=args.diffused)''',
                "with torch.no_grad():", False),
    "data": ('''\
    depth = depth_map[i].data[-H:, :W]
    ptc = tp.depth_to_pcl(calib, depth, max_high=1.)
    ptc = calib.lidar_to_rect(ptc[:, 0:3])
    voxel = gen_feature_diffused_tensor(ptc, Z, X, grid_3D_extended, diffused=args.diffused)''',
             "depth = depth_map[i].data[-H:, :W]", False),
}


def write_driver(form: str, pixor: str, calib: str, path: str) -> int | None:
    """Write the driver of ``form``; return the line number of its cut (None for ``paper``)."""
    code, cut, _ = FORMS[form]
    text = HEAD.format(form=form, pixor=pixor, calib=calib) + STEP.format(per_sample=code)
    with open(path, "w") as fh:
        fh.write(text)
    if not cut:
        return None
    for k, ln in enumerate(text.split("\n"), 1):
        if ln.strip().startswith(cut):
            return k
    raise AssertionError(f"cut line {cut!r} not in the driver")


def depth_params(names: list[str]) -> list[str]:
    return [n for n in names if common.norm(n).startswith("depth_model.")]


def run_form(form: str, checkout: str, work: str, tree: str, timeout: float) -> tuple[bool, str, float]:
    t0 = time.monotonic()
    base = common.fresh_dir(os.path.join(work, form))
    pixor = os.path.join(checkout, "PIXOR")
    calib = os.path.join(base, "calib.txt")
    with open(calib, "w") as fh:
        fh.write(CALIB)
    driver = os.path.join(base, f"pixor_e2e_{form}.py")
    cut_line = write_driver(form, pixor, calib, driver)
    expect_reach = FORMS[form][2]
    extra = {"GP_CPU_SHIM": "all"}
    stubs = os.pathsep.join([STUBS_E2E])
    reasons: list[tuple[str, str]] = []
    # the oracle
    oprefix = os.path.join(base, "oracle")
    oenv = common.base_env(tree, {**extra, "GP_ORACLE_OUT": oprefix, "GP_ORACLE_USER": os.path.realpath(base)})
    oenv["PYTHONPATH"] += os.pathsep + stubs
    orun = common.run([common.python(), driver], base, oenv, timeout, os.path.join(base, "oracle.log"))
    oracles = [o for o in common.load_oracle(oprefix) if common.losses_of(o)]
    if not oracles:
        last = orun.tail.strip().splitlines()[-1:] or ["(no output)"]
        return False, f"[harness] the oracle run saw no backward (exit {orun.rc}): {last[0][:200]}", time.monotonic() - t0
    orc = oracles[0]
    call = common.losses_of(orc)[0]
    oterms = {t["name"]: t["reach"] for t in call.get("terms", [])}
    names = {p["id"]: p["names"] for p in orc["params"]}
    odet = [n for i in oterms.get("det_loss", []) for n in names[i][:1]]
    oracle_reach = bool(depth_params(odet))
    if oracle_reach != expect_reach:
        reasons.append(("harness", f"the oracle says det_loss {'reaches' if oracle_reach else 'does not reach'} the depth net"))
    # graphprobe check, as a user runs it
    out = os.path.join(base, "out.json")
    genv = common.base_env(tree, extra)
    genv["PYTHONPATH"] += os.pathsep + stubs
    # `check` prints the text report and has no -o; `render -o out.json` writes the same report,
    # and check's exit status is documented as 1 exactly when a finding has severity error.
    grun = common.run([common.python(), "-m", "graphprobe", "render", driver, "-o", out, "-q"], base, genv, timeout,
                      os.path.join(base, "graphprobe.log"))
    reps = common.load_reports(out)
    if not reps:
        last = [ln for ln in grun.tail.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
        reasons.append(("cli", f"no report (exit {grun.rc}{', timed out' if grun.timed_out else ''}): {last[0][:200]}"))
        return False, "; ".join(f"[{a}] {t}" for a, t in reasons), time.monotonic() - t0
    rep = reps[0]
    cmp = common.compare(rep, orc)
    reasons += cmp.problems
    gdet = depth_params(rep.get("reaches", {}).get("det_loss", []))
    if "det_loss" not in rep.get("reaches", {}):
        reasons.append(("names", f"no det_loss column (losses: {[x['name'] for x in rep.get('losses', [])]})"))
    elif bool(gdet) != expect_reach:
        reasons.append(("reach", f"graphprobe says det_loss {'reaches' if gdet else 'does not reach'} the depth net"))
    errs = common.errors_of(rep)
    if grun.rc not in (0,):
        reasons.append(("cli", f"render exit {grun.rc}"))
    check_exit = 1 if (rep.get("findings") or {}).get("error", 0) else 0
    want_exit = 0 if expect_reach else 1
    if check_exit != want_exit:
        reasons.append(("judgement", f"check would exit {check_exit} (findings {rep.get('findings')}), expected {want_exit}"))
    if expect_reach and errs:
        reasons.append(("judgement", f"{len(errs)} error finding(s) on the paper's code: {'; '.join(errs[:3])}"))
    if not expect_reach:
        site = f"{os.path.basename(driver)}:{cut_line}"
        at = [c for c in rep.get("cuts", []) if c.get("severity") == "error" and common._site(c.get("location")) == site]
        if not at:
            cuts = [(c.get("kind"), common._site(c.get("location")), c.get("severity")) for c in rep.get("cuts", [])]
            reasons.append(("judgement", f"no error cut at {site}; cuts: {cuts[:4]}"))
        if site not in (rep.get("verdict") or ""):
            reasons.append(("judgement", f"verdict does not name {site}: {(rep.get('verdict') or '')[:200]!r}"))
    text = "; ".join(f"[{a}] {t}" for a, t in reasons)
    return not reasons, text, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkout", help="a checkout of the End-to-End Pseudo-LiDAR code (with PIXOR/)")
    ap.add_argument("only", nargs="*", help=f"forms (default: all): {', '.join(FORMS)}")
    ap.add_argument("--graphprobe", default=common.REPO, help="the graphprobe tree to test (default: this one)")
    ap.add_argument("--work", default=None, help="where runs go (default: a temp dir, removed after)")
    ap.add_argument("--timeout", type=float, default=480.0, help="seconds per run (default 480)")
    ap.add_argument("--results", default=None, metavar="RESULTS.md",
                    help="also write the lines into this file's 'Real code' section (benchmarks/RESULTS.md)")
    a = ap.parse_args(argv)
    if not os.path.isfile(os.path.join(a.checkout, "PIXOR", "train_pixor_e2e.py")):
        print(f"pseudo_lidar_e2e.py: {a.checkout} has no PIXOR/train_pixor_e2e.py", file=sys.stderr)
        return 2
    common.ensure_deps(common.python())
    work = a.work or tempfile.mkdtemp(prefix="gp-e2e-")
    forms = a.only or list(FORMS)
    unknown = [f for f in forms if f not in FORMS]
    if unknown:
        print(f"pseudo_lidar_e2e.py: no form {unknown[0]!r}; forms: {', '.join(FORMS)}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    n = 0
    lines = []
    try:
        for form in forms:
            ok, why, secs = run_form(form, os.path.abspath(a.checkout), work, os.path.abspath(a.graphprobe), a.timeout)
            n += ok
            lines.append(f"{'PASS' if ok else 'FAIL'}  {form:<8} {secs:6.1f}s  {why}".rstrip())
            print(lines[-1], flush=True)
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    lines.append(f"{n}/{len(forms)}  ({time.monotonic() - t0:.0f}s)")
    print(lines[-1])
    if a.results:
        body = [common.machine_line() + ".", "",
                f"graphprobe: {common.graphprobe_commit(a.graphprobe)}; End-to-End Pseudo-LiDAR at "
                f"{common.graphprobe_commit(a.checkout) if os.path.isdir(os.path.join(a.checkout, '.git')) else 'HEAD (7392635)'}; "
                "`python benchmarks/realworld/pseudo_lidar_e2e.py <checkout>`.", "", "```", *lines, "```"]
        common.write_results(a.results, "e2e", "End-to-End Pseudo-LiDAR (PIXOR e2e, one CPU step)", body)
    return 0 if n == len(forms) else 1


if __name__ == "__main__":
    sys.exit(main())
