"""One Mean Teacher training step: medmodal's :class:`medmodal.engine.semi.MeanTeacher` against a plain
reference-style loop, same network, same batch, same loss, side by side in one run (CPU, one thread).

Arms (each its own student / teacher / SGD from the same initial weights):

* ``a`` medmodal: ``MeanTeacher.loss`` (one student forward on the whole batch, teacher on the noisy unlabelled
  tail, :func:`medmodal.losses.semi.softmax_mse`, :func:`medmodal.layers.ramps.sigmoid_rampup`), ``zero_grad``,
  ``backward``, ``step``, ``MeanTeacher.after_step`` (:func:`medmodal.layers.momentum.ema_update_`, one fused
  ``torch._foreach_lerp_``).
* ``b`` reference-style loop, written here from the SSL4MIS / ERANet recipe: a frozen deep copy as the teacher;
  the student runs **twice**, on the labelled half and on the unlabelled half; the teacher on the unlabelled half
  plus ``clamp(N(0, 0.1), -0.2, 0.2)`` under ``no_grad``; the same supervised loss; the consistency
  ``mean((softmax(s_u) - softmax(t_u)) ** 2)``; the weight ``0.1 * exp(-5 (1 - t)^2)`` in numpy; then the EMA as a
  Python loop ``ema.mul_(alpha).add_(p, alpha=1 - alpha)`` with ``alpha = min(1 - 1 / (step + 1), 0.99)``.
* ``c`` the same loop with **one** student forward on the concatenated batch (what SSL4MIS's
  ``train_mean_teacher_2D.py`` itself does: ``outputs = model(volume_batch)``). In train mode ``a`` and ``c``
  compute the same thing (one BatchNorm batch); ``b`` normalises each half with its own batch statistics.

The supervised loss is the seg-2D task's (:func:`medmodal.engine.seg2d.module.build_loss`: MONAI ``DiceCELoss``,
CE 0.4 + Dice 0.6), called as ``loss(logits, labels[:, None])``.

Identity check (eval mode for every network, so BatchNorm uses running statistics and dropout is off, which makes
one concatenated forward and two half-batch forwards the same function; the teacher noise is the same draw: the
global generator is re-seeded before each arm's loss): at steps 0, 1 and 50 of 100 the losses agree to 1e-5
relative and, after the SGD step and the EMA, the teacher parameters to 1e-6 absolute. The script asserts it.

Timing (train mode, as in training): ``--warmup`` steps per arm, then ``--repeats`` rounds in which every arm
runs one step, interleaved with the order rotating each round (a drifting machine load hits all arms alike);
median and inter-quartile range per step, split into the loss (forwards + loss terms), zero_grad + backward +
SGD step, and the EMA. The EMA alone (fused ``_foreach_lerp_`` vs the Python loop) is timed separately over
``--ema-repeats`` interleaved calls.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/semi_step_speed.py [--widths 8 16 32 64 128]
        [--widths 16 32 64 128 256] [--repeats 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from medmodal.engine.seg2d.module import build_loss
from medmodal.engine.semi import MeanTeacher
from medmodal.layers.momentum import ema_update_
from medmodal.models import create_model

SETTINGS = {"method": "mean_teacher", "labelled_batch": 4, "ema": 0.99, "consistency": 0.1, "rampup": 1.0,
            "noise": 0.1}
LOSS = {"ce_weight": 0.4, "dice_weight": 0.6, "dice_include_background": True}
BATCH, LABELLED, SIDE, CLASSES = 8, 4, 128, 4
ARMS = ("a", "b", "c")
NAMES = {"a": "medmodal MeanTeacher", "b": "reference, 2 student forwards", "c": "reference, 1 student forward"}


def make_model(widths):
    return create_model("unet2d", modalities=("cine",), num_classes=CLASSES, widths=list(widths))


def ref_sigmoid_rampup(current, length):
    """The ramp as the reference scripts compute it, in numpy: ``exp(-5 (1 - t)^2)``, ``t = clip(current) / length``."""
    if length == 0:
        return 1.0
    phase = 1.0 - np.clip(current, 0.0, length) / length
    return float(np.exp(-5.0 * phase * phase))


class ReferenceMeanTeacher:
    """The reference-style step (module docstring, arms ``b`` and ``c``)."""

    def __init__(self, student, settings, split):
        self.settings, self.split = settings, split
        self.teacher = copy.deepcopy(student)
        for p in self.teacher.parameters():
            p.requires_grad = False

    def loss(self, student, x, y, supervised, step, total):
        s = self.settings
        lb, noise_sd = s["labelled_batch"], s["noise"]
        x_l, x_u = x[:lb], x[lb:]
        noise = torch.clamp(torch.randn_like(x_u) * noise_sd, -2 * noise_sd, 2 * noise_sd)
        if self.split:
            s_l = student(x_l)
            s_u = student(x_u)
        else:
            out = student(x)
            s_l, s_u = out[:lb], out[lb:]
        with torch.no_grad():
            t_u = self.teacher(x_u + noise)
        sup = supervised(s_l, y[:lb])
        cons = torch.mean((torch.softmax(s_u, dim=1) - torch.softmax(t_u, dim=1)) ** 2)
        weight = s["consistency"] * ref_sigmoid_rampup(step, s["rampup"] * total)
        return sup + weight * cons, {"supervised": sup.detach(), "consistency": cons.detach(),
                                     "consistency_weight": weight}

    def after_step(self, student, step):
        alpha = min(1 - 1 / (step + 1), self.settings["ema"])
        with torch.no_grad():
            for ema_p, p in zip(self.teacher.parameters(), student.parameters()):
                ema_p.mul_(alpha).add_(p, alpha=1 - alpha)


class Arm:
    """One student, its optimiser and its semi-supervised step."""

    def __init__(self, kind, student, widths):
        self.kind, self.student = kind, student
        self.opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
        if kind == "a":
            self.method = MeanTeacher(SETTINGS, student, lambda: make_model(widths))
            self.teacher = self.method.teacher
        else:
            self.method = ReferenceMeanTeacher(student, SETTINGS, split=(kind == "b"))
            self.teacher = self.method.teacher

    def train(self, mode=True):
        self.student.train(mode)
        self.teacher.train(mode)   # the teachers stay in train mode in the reference scripts (never .eval())

    def loss(self, x, y, supervised, step, total):
        student = self.student
        return self.method.loss(lambda t: student(t), x, y, supervised, step, total)

    def step(self, x, y, supervised, step, total):
        """One training step; returns the seconds of (loss, zero_grad + backward + SGD step, EMA)."""
        t0 = time.perf_counter()
        loss, _ = self.loss(x, y, supervised, step, total)
        t1 = time.perf_counter()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        t2 = time.perf_counter()
        self.method.after_step(self.student, step)
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2


def build_arms(widths, seed=0):
    torch.manual_seed(seed)
    student = make_model(widths)
    return {k: Arm(k, student if k == "a" else copy.deepcopy(student), widths) for k in ARMS}


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(BATCH, 1, SIDE, SIDE, generator=g)
    y = torch.randint(0, CLASSES, (BATCH, SIDE, SIDE), generator=g)
    y[LABELLED:] = -1
    return x, y


def identity_check(widths, x, y, supervised):
    """Eval-mode equality of the three arms' losses and teachers (module docstring); returns the worst differences."""
    arms = build_arms(widths, seed=0)
    for arm in arms.values():
        arm.train(False)
    worst = {"loss_rel": 0.0, "supervised_rel": 0.0, "consistency_rel": 0.0, "teacher_abs": 0.0, "student_abs": 0.0}
    rows = []
    total = 100
    for step in (0, 1, 50):
        out = {}
        for k, arm in arms.items():
            torch.manual_seed(1000 + step)   # the same teacher noise in every arm
            loss, terms = arm.loss(x, y, supervised, step, total)
            arm.opt.zero_grad()
            loss.backward()
            arm.opt.step()
            arm.method.after_step(arm.student, step)
            out[k] = (float(loss.detach()), float(terms["supervised"]), float(terms["consistency"]),
                      float(terms["consistency_weight"]))
        for k in ("b", "c"):
            rel = [abs(out[k][i] - out["a"][i]) / max(abs(out["a"][i]), 1e-30) for i in range(3)]
            worst["loss_rel"] = max(worst["loss_rel"], rel[0])
            worst["supervised_rel"] = max(worst["supervised_rel"], rel[1])
            worst["consistency_rel"] = max(worst["consistency_rel"], rel[2])
            for name, pick in (("teacher_abs", lambda a: a.teacher), ("student_abs", lambda a: a.student)):
                with torch.no_grad():
                    diff = max(float((p - q).abs().max()) for p, q in zip(pick(arms["a"]).parameters(),
                                                                             pick(arms[k]).parameters()))
                worst[name] = max(worst[name], diff)
        rows.append({"step": step, **{k: {"loss": v[0], "supervised": v[1], "consistency": v[2],
                                          "weight": v[3]} for k, v in out.items()}})
        print(f"  check step {step:>2}: loss a {out['a'][0]:.8f}  b {out['b'][0]:.8f}  c {out['c'][0]:.8f}  "
              f"(weight {out['a'][3]:.6f})", flush=True)
    print(f"  worst: loss rel {worst['loss_rel']:.2e}, teacher params abs {worst['teacher_abs']:.2e}, "
          f"student params abs {worst['student_abs']:.2e}", flush=True)
    assert worst["loss_rel"] <= 1e-5, f"losses differ: {worst}"
    assert worst["teacher_abs"] <= 1e-6, f"teachers differ: {worst}"
    return {"steps": rows, "worst": worst}


def summary(seconds):
    ms = [1000 * s for s in seconds]
    q1, med, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    return {"median_ms": statistics.median(ms), "q1_ms": q1, "q3_ms": q3, "iqr_ms": q3 - q1}


def time_steps(widths, x, y, supervised, warmup, repeats):
    arms = build_arms(widths, seed=0)
    for arm in arms.values():
        arm.train(True)
    total = warmup + repeats
    for k, arm in arms.items():
        for s in range(warmup):
            arm.step(x, y, supervised, s, total)
    phases = {k: {"loss": [], "backward_step": [], "ema": [], "total": []} for k in ARMS}
    for r in range(repeats):
        order = ARMS[r % len(ARMS):] + ARMS[:r % len(ARMS)]
        for k in order:
            fwd, bwd, ema = arms[k].step(x, y, supervised, warmup + r, total)
            for name, v in (("loss", fwd), ("backward_step", bwd), ("ema", ema), ("total", fwd + bwd + ema)):
                phases[k][name].append(v)
    return {k: {name: summary(v) for name, v in p.items()} for k, p in phases.items()}


def time_ema(widths, repeats):
    torch.manual_seed(0)
    student = make_model(widths)
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad = False
    alpha = 0.99

    def fused():
        ema_update_(student, teacher, alpha)

    def loop():
        with torch.no_grad():
            for ema_p, p in zip(teacher.parameters(), student.parameters()):
                ema_p.mul_(alpha).add_(p, alpha=1 - alpha)

    fns = {"fused": fused, "loop": loop}
    for fn in fns.values():
        for _ in range(5):
            fn()
    times = {k: [] for k in fns}
    for r in range(repeats):
        for k in (("fused", "loop") if r % 2 == 0 else ("loop", "fused")):
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    params = list(student.parameters())
    return {"tensors": len(params), "parameters": sum(p.numel() for p in params),
            **{k: summary(v) for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs=5, action="append",
                        help="U-Net widths (repeatable; default 8 16 32 64 128)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--ema-repeats", type=int, default=200)
    parser.add_argument("--json", help="write the results here (default: print them)")
    args = parser.parse_args()
    sizes = args.widths or [[8, 16, 32, 64, 128]]
    torch.set_num_threads(1)
    supervised_loss = build_loss(LOSS)

    def supervised(logits, labels):
        return supervised_loss(logits, labels[:, None])

    x, y = batch()
    header = (f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
              f"{torch.get_num_threads()} thread(s); batch {BATCH} ({LABELLED} labelled) x 1 x {SIDE} x {SIDE}, "
              f"{CLASSES} classes, fp32, SGD lr 0.01 momentum 0.9; {args.warmup} warm-up steps per arm, "
              f"median [IQR] of {args.repeats} interleaved steps")
    print(header + "\n", flush=True)
    results = {"header": header, "torch": torch.__version__, "settings": SETTINGS, "loss": LOSS,
               "repeats": args.repeats, "warmup": args.warmup, "sizes": []}
    for widths in sizes:
        print(f"widths {widths}: identity check (eval mode)", flush=True)
        check = identity_check(widths, x, y, supervised)
        print(f"widths {widths}: timing (train mode)", flush=True)
        steps = time_steps(widths, x, y, supervised, args.warmup, args.repeats)
        ema = time_ema(widths, args.ema_repeats)
        results["sizes"].append({"widths": widths, "check": check, "steps": steps, "ema_alone": ema})

    def cell(s):
        return f"{s['median_ms']:.1f} [{s['q1_ms']:.1f}-{s['q3_ms']:.1f}]"

    lines = ["| widths | arm | step ms | loss (fwd) ms | bwd + SGD ms | EMA ms | step / a |",
             "|---|---|--:|--:|--:|--:|--:|"]
    for size in results["sizes"]:
        base = size["steps"]["a"]["total"]["median_ms"]
        for k in ARMS:
            s = size["steps"][k]
            lines.append(f"| {'/'.join(map(str, size['widths']))} | {k}: {NAMES[k]} | {cell(s['total'])} | "
                         f"{cell(s['loss'])} | {cell(s['backward_step'])} | {s['ema']['median_ms']:.2f} | "
                         f"{s['total']['median_ms'] / base:.3f} |")
    lines += ["", "| widths | parameter tensors | parameters | EMA fused ms | EMA loop ms | loop / fused |",
              "|---|--:|--:|--:|--:|--:|"]
    for size in results["sizes"]:
        e = size["ema_alone"]
        lines.append(f"| {'/'.join(map(str, size['widths']))} | {e['tensors']} | {e['parameters']:,} | "
                     f"{cell(e['fused'])} | {cell(e['loop'])} | "
                     f"{e['loop']['median_ms'] / e['fused']['median_ms']:.2f} |")
    lines += ["", "| widths | loss rel diff (worst b, c vs a) | teacher params abs diff | student params abs diff |",
              "|---|--:|--:|--:|"]
    for size in results["sizes"]:
        w = size["check"]["worst"]
        lines.append(f"| {'/'.join(map(str, size['widths']))} | {w['loss_rel']:.1e} | {w['teacher_abs']:.1e} | "
                     f"{w['student_abs']:.1e} |")
    table = "\n".join(lines)
    results["table"] = table
    print("\n" + table + "\n", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
