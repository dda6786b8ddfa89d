#!/usr/bin/env python3
"""Reference values for tests/learner.rs, written independently of the Rust
code: each schedule and optimizer is implemented here from its published
formula (the sources named in src/learner/), in float64 numpy.

    python3 tests/learner_reference.py > tests/golden/learner_reference.json

Step convention (AXLearn's, 1-based): the update after `count` earlier ones
sees step s = count + 1. Schedules are written as functions of s; the JSON
lists them by count (0, 1, ...). Configs carry only the fields that differ
from the Rust defaults, so the tests also exercise those defaults.
"""

import fnmatch
import json
import math

import numpy as np

COUNTS = 16


# ----------------------------------------------------------------- schedules
# Each function maps the 1-based step s to the rate.


def warmup_cosine(s, peak, w, total, final=0.0):
    if s < w:
        return peak * s / w
    frac = min(s - w, total - w) / max(total - w, 1)
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * frac))


def warmup_linear(s, peak, w, total, final=0.0):
    if s < w:
        return peak * s / w
    frac = min(s - w, total - w) / max(total - w, 1)
    return peak + (final - peak) * frac


def wsd(s, peak, w, decay, total, final=0.0):
    if s < w:
        return peak * s / w
    if decay == 0 or s <= total - decay:
        return peak
    return peak + (final - peak) * min(s - (total - decay), decay) / decay


def inverse_sqrt(s, peak, w):
    # Vaswani et al. eq. 3, scaled to peak at s = w.
    return peak * min(s / w, (s / w) ** -0.5)


def polynomial(s, begin_lr, end_lr, begin_step, end_step, power):
    frac = min(max((s - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return begin_lr + (end_lr - begin_lr) * frac**power


def segment_wise(s, fns, lengths):
    start = 0
    for fn, n in zip(fns, lengths):
        if s <= start + n:
            return fn(s - start)
        start += n
    return fns[-1](s - start)


SCHEDULES = [
    # The case: W = 4, total 12, peak 0.1.
    (
        "warmup_cosine_w4_t12",
        {"kind": "warmup_cosine", "peak_lr": 0.1, "warmup_steps": 4, "total_steps": 12},
        lambda s: warmup_cosine(s, 0.1, 4, 12),
    ),
    # The schedule of tests/trainer.rs's run.
    (
        "warmup_cosine_w3_t8_floor",
        {
            "kind": "warmup_cosine",
            "peak_lr": 0.05,
            "warmup_steps": 3,
            "total_steps": 8,
            "final_lr": 0.005,
        },
        lambda s: warmup_cosine(s, 0.05, 3, 8, 0.005),
    ),
    (
        "warmup_cosine_no_warmup",
        {"kind": "warmup_cosine", "peak_lr": 0.1, "warmup_steps": 0, "total_steps": 6},
        lambda s: warmup_cosine(s, 0.1, 0, 6),
    ),
    ("constant_default", {"kind": "constant"}, lambda s: 1e-3),
    (
        "warmup_linear",
        {
            "kind": "warmup_linear",
            "peak_lr": 0.1,
            "warmup_steps": 3,
            "total_steps": 10,
            "final_lr": 0.01,
        },
        lambda s: warmup_linear(s, 0.1, 3, 10, 0.01),
    ),
    (
        "wsd",
        {
            "kind": "wsd",
            "peak_lr": 0.1,
            "warmup_steps": 2,
            "decay_steps": 3,
            "total_steps": 10,
            "final_lr": 0.001,
        },
        lambda s: wsd(s, 0.1, 2, 3, 10, 0.001),
    ),
    (
        "wsd_no_decay",
        {"kind": "wsd", "peak_lr": 0.1, "warmup_steps": 2, "decay_steps": 0, "total_steps": 10},
        lambda s: wsd(s, 0.1, 2, 0, 10),
    ),
    (
        "inverse_sqrt",
        {"kind": "inverse_sqrt", "peak_lr": 0.1, "warmup_steps": 4},
        lambda s: inverse_sqrt(s, 0.1, 4),
    ),
    (
        "polynomial_squared",
        {
            "kind": "polynomial",
            "begin_lr": 0.1,
            "end_lr": 0.01,
            "begin_step": 2,
            "end_step": 10,
            "power": 2.0,
        },
        lambda s: polynomial(s, 0.1, 0.01, 2, 10, 2.0),
    ),
    (
        "segment_wise",
        {
            "kind": "segment_wise",
            "segments": [
                {"kind": "polynomial", "begin_lr": 0.0, "end_lr": 0.1, "end_step": 3},
                {"kind": "constant", "lr": 0.1},
                {"kind": "warmup_cosine", "peak_lr": 0.1, "warmup_steps": 0, "total_steps": 5,
                 "final_lr": 0.01},
            ],
            "segment_steps": [3, 2],
        },
        lambda s: segment_wise(
            s,
            [
                lambda k: polynomial(k, 0.0, 0.1, 0, 3, 1.0),
                lambda k: 0.1,
                lambda k: warmup_cosine(k, 0.1, 0, 5, 0.01),
            ],
            [3, 2],
        ),
    ),
]


# ---------------------------------------------------------------- optimizers

LR = 0.01
STEPS = 5
PARAMS = [  # name, shape, weight decay applies
    ("w", (4, 6), True),
    ("b", (6,), False),
    ("s", (5, 2, 3), True),
]


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def initial():
    params, grads = {}, []
    for j, (name, shape, _) in enumerate(PARAMS):
        n = int(np.prod(shape))
        i = np.arange(n, dtype=np.float64)
        params[name] = f32(np.cos(0.7 * i + j) * 0.5 + 0.1 * (j + 1)).reshape(shape)
    for k in range(STEPS):
        step = {}
        for j, (name, shape, _) in enumerate(PARAMS):
            n = int(np.prod(shape))
            i = np.arange(n, dtype=np.float64)
            step[name] = f32(np.sin(0.37 * (i + 1) + 1.3 * k + j) * (0.2 + 0.1 * k)).reshape(shape)
        grads.append(step)
    return params, grads


def sgd(momentum=0.9, nesterov=False, weight_decay=0.0):
    # optax.sgd = trace(decay=momentum, nesterov) then scale(-lr).
    def init(p):
        return {"momentum": np.zeros_like(p)}

    def update(p, g, st, t, decay, lr):
        v = momentum * st["momentum"] + g
        u = g + momentum * v if nesterov else v
        if decay:
            u = u + weight_decay * p
        return p - lr * u, {"momentum": v}

    return init, update


def adamw(b1=0.9, b2=0.95, eps=1e-8, eps_root=0.0, weight_decay=0.1, bias_correction=True):
    # optax.adamw = scale_by_adam, add_decayed_weights, scale(-lr).
    def init(p):
        return {"mu": np.zeros_like(p), "nu": np.zeros_like(p)}

    def update(p, g, st, t, decay, lr):
        mu = b1 * st["mu"] + (1 - b1) * g
        nu = b2 * st["nu"] + (1 - b2) * g * g
        mh, nh = (mu / (1 - b1**t), nu / (1 - b2**t)) if bias_correction else (mu, nu)
        u = mh / (np.sqrt(nh + eps_root) + eps)
        if decay:
            u = u + weight_decay * p
        return p - lr * u, {"mu": mu, "nu": nu}

    return init, update


def lion(b1=0.9, b2=0.99, weight_decay=1e-3):
    # Chen et al. 2023, Algorithm 2 (optax.lion).
    def init(p):
        return {"mu": np.zeros_like(p)}

    def update(p, g, st, t, decay, lr):
        c = b1 * st["mu"] + (1 - b1) * g
        # Keep the reference away from sign flips that f32 rounding could cause.
        assert np.all(np.abs(c) > 1e-4), c
        u = np.sign(c)
        if decay:
            u = u + weight_decay * p
        return p - lr * u, {"mu": b2 * st["mu"] + (1 - b2) * g}

    return init, update


def adafactor(decay_rate=0.8, eps=1e-30, min_dim=128, clip=1.0, param_scale=True,
              min_scale=1e-3, weight_decay=0.0):
    # Shazeer & Stern 2018, Algorithms 4/5, in optax.adafactor's form: factor
    # over the two largest dims (the later one on ties), relative decay
    # 1 - t^-0.8, update clipping by RMS, scaling by the parameter's RMS;
    # weight decay decoupled and scaled by the rate, as for the others.
    def dims(shape):
        if len(shape) < 2:
            return None
        order = sorted((n, i) for i, n in enumerate(shape))
        if order[-2][0] < min_dim:
            return None
        return order[-2][1], order[-1][1]

    def init(p):
        d = dims(p.shape)
        if d is None:
            return {"v": np.zeros_like(p)}
        r, c = d
        return {"v_row": np.zeros(np.delete(p.shape, c)), "v_col": np.zeros(np.delete(p.shape, r))}

    def update(p, g, st, t, decay, lr):
        beta = 1.0 - t ** (-decay_rate)
        sq = g * g + eps
        d = dims(p.shape)
        if d is None:
            v = beta * st["v"] + (1 - beta) * sq
            u = g / np.sqrt(v)
            new = {"v": v}
        else:
            r, c = d
            v_row = beta * st["v_row"] + (1 - beta) * sq.mean(axis=c)
            v_col = beta * st["v_col"] + (1 - beta) * sq.mean(axis=r)
            # The full second-moment estimate V = R C / sum(R), per slice.
            row = np.expand_dims(v_row, c)
            col = np.expand_dims(v_col, r)
            v_hat = row * col / row.mean(axis=r, keepdims=True)
            u = g / np.sqrt(v_hat)
            new = {"v_row": v_row, "v_col": v_col}
        if clip is not None:
            u = u / max(1.0, np.sqrt(np.mean(u * u)) / clip)
        if param_scale:
            u = u * max(np.sqrt(np.mean(p * p)), min_scale)
        if decay:
            u = u + weight_decay * p
        return p - lr * u, new

    return init, update


OPTIMIZERS = [
    ("sgd_momentum", {"kind": "sgd"}, sgd()),
    (
        "sgd_nesterov_decay",
        {"kind": "sgd", "momentum": 0.8, "nesterov": True, "weight_decay": 0.05},
        sgd(0.8, True, 0.05),
    ),
    ("adamw_default", {"kind": "adam_w"}, adamw()),
    (
        "adamw_eps_root_no_bias_correction",
        {"kind": "adam_w", "beta2": 0.99, "eps": 1e-6, "eps_root": 1e-4,
         "bias_correction": False},
        adamw(b2=0.99, eps=1e-6, eps_root=1e-4, bias_correction=False),
    ),
    ("lion", {"kind": "lion", "weight_decay": 0.1}, lion(weight_decay=0.1)),
    # Parameter groups: the first glob that matches a path sets its rate
    # multiplier and whether weight decay applies (else: the default mask).
    (
        "adamw_param_groups",
        {"kind": "adam_w"},
        adamw(),
        [
            {"paths": "b", "lr_scale": 0.5, "weight_decay": True},
            {"paths": "s*", "weight_decay": False},
            {"paths": "*", "lr_scale": 2.0},
        ],
    ),
    (
        "adafactor_factored",
        {"kind": "adafactor", "min_dim_size_to_factor": 2, "weight_decay": 0.01},
        adafactor(min_dim=2, weight_decay=0.01),
    ),
    (
        "adafactor_unfactored_unclipped",
        {"kind": "adafactor", "clipping_threshold": None, "multiply_by_parameter_scale": False},
        adafactor(clip=None, param_scale=False),
    ),
]


def flat(a):
    return [float(x) for x in np.asarray(a).reshape(-1)]


def group_settings(name, decay, groups):
    for g in groups:
        if fnmatch.fnmatchcase(name, g["paths"]):
            return LR * g.get("lr_scale", 1.0), g.get("weight_decay", decay)
    return LR, decay


def run_optimizer(init, update, groups):
    params, grads = initial()
    state = {name: init(params[name]) for name, _, _ in PARAMS}
    steps = []
    for k in range(STEPS):
        t = k + 1
        out = {}
        for name, _, decay in PARAMS:
            lr, decay = group_settings(name, decay, groups)
            params[name], state[name] = update(
                params[name], grads[k][name], state[name], t, decay, lr
            )
            out[name] = flat(params[name])
            for slot, v in state[name].items():
                out[f"opt/{slot}/{name}"] = flat(v)
        steps.append(out)
    return steps


def main():
    params, grads = initial()
    doc = {
        "generated_by": "tests/learner_reference.py",
        "schedules": [
            {"name": n, "schedule": cfg, "rates": [fn(c + 1) for c in range(COUNTS)]}
            for n, cfg, fn in SCHEDULES
        ],
        "optimizer_inputs": {
            "lr": LR,
            "params": [
                {"name": n, "shape": list(shape), "decay": decay, "value": flat(params[n])}
                for n, shape, decay in PARAMS
            ],
            "grads": [{n: flat(g[n]) for n, _, _ in PARAMS} for g in grads],
        },
        "optimizers": [
            {
                "name": case[0],
                "optimizer": case[1],
                "param_groups": case[3] if len(case) > 3 else [],
                "steps": run_optimizer(*case[2], case[3] if len(case) > 3 else []),
            }
            for case in OPTIMIZERS
        ],
    }
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
