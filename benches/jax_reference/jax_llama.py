"""The llama-tiny / llama-small training step of axle, written in jax.numpy.

It runs the computation `axle bench --export DIR` describes: the initial
parameters (axle's checkpoint, `DIR/step_*/params.safetensors`), the batches
(`DIR/batches.npy`, int32 [steps, batch, seq + 1]) and every argument's
sharding on the mesh (`DIR/shardings/<mesh>.json`), on a PJRT plugin file
given by path, and reports what `axle bench` reports: trace+lower, compile
and step times and the losses of every step, as JSON.

The model and learner follow axle's modules exactly (see docs/benchmarks.md):
pre-norm RMSNorm (eps 1e-6, scale only), RoPE on the two halves of each head
(theta 10000), causal softmax attention in f32 with masked logits -1e30,
SwiGLU feed-forward, untied LM head, mean cross-entropy; AdamW (lr 1e-3,
betas 0.9/0.95, eps 1e-8, weight decay 0.1 on parameters of rank >= 2,
bias correction), global-norm clipping to 1.0.
"""

import argparse
import glob
import json
import math
import os
import re
import time

# Heads per model: the only dimension the parameter shapes do not give.
HEADS = {"llama-tiny": 4, "llama-small": 10}
NORM_EPS = 1e-6
ROPE_THETA = 10000.0
LR, BETA1, BETA2, ADAM_EPS, WEIGHT_DECAY, MAX_GRAD_NORM = 1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--export", required=True, help="directory written by axle bench --export")
    p.add_argument("--model", required=True, choices=sorted(HEADS))
    p.add_argument("--mesh", default="data=1", help="mesh as axle writes it, e.g. fsdp=4")
    p.add_argument("--plugin", required=True, help="path to the PJRT plugin .so")
    p.add_argument("--cpu-devices", type=int, default=4)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--json", help="write the report here")
    p.add_argument("--dump-stablehlo", help="write the lowered StableHLO text here")
    return p.parse_args()


def make_train_step(num_layers, heads):
    """The training step `train_step(params, mu, nu, count, inputs, targets)`.

    Returns `(params, mu, nu, count + 1, loss, grad_norm)`; `params`, `mu`
    and `nu` are dicts keyed by axle's parameter paths (f32), `count` is the
    int32 step, `inputs`/`targets` int32 [batch, seq]. Also used by
    aot_memory.py, which compiles it ahead of time for TPU and GPU.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    def rms_norm(x, scale):
        return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + NORM_EPS) * scale

    def rope(x):
        half = x.shape[-1] // 2
        inv_freq = ROPE_THETA ** (-2.0 * jnp.arange(half, dtype=jnp.float32) / x.shape[-1])
        angles = jnp.arange(x.shape[1], dtype=jnp.float32)[:, None] * inv_freq
        cos, sin = jnp.cos(angles)[None, :, None, :], jnp.sin(angles)[None, :, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def loss_fn(params, inputs, targets):
        b, t = inputs.shape
        x = params["decoder/token_embedding/weight"][inputs]
        causal = jnp.tril(jnp.ones((t, t), dtype=bool))
        for i in range(num_layers):
            p = lambda n: params[f"decoder/transformer/layers/{i}/{n}"]
            h = rms_norm(x, p("attention_norm/scale"))
            dim = h.shape[-1]
            hd = dim // heads
            q = rope((h @ p("attention/q_proj/weight")).reshape(b, t, heads, hd))
            k = rope((h @ p("attention/k_proj/weight")).reshape(b, t, heads, hd))
            v = (h @ p("attention/v_proj/weight")).reshape(b, t, heads, hd)
            logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (1.0 / math.sqrt(hd))
            logits = jnp.where(causal, logits, -1e30)
            probs = jax.nn.softmax(logits, axis=-1)
            out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, t, dim)
            x = x + out @ p("attention/o_proj/weight")
            h = rms_norm(x, p("ffn_norm/scale"))
            gate = h @ p("feed_forward/gate_proj/weight")
            up = h @ p("feed_forward/up_proj/weight")
            x = x + (jax.nn.silu(gate) * up) @ p("feed_forward/down_proj/weight")
        x = rms_norm(x, params["decoder/output_norm/scale"])
        logits = x @ params["decoder/lm_head/weight"]
        log_z = jax.nn.logsumexp(logits, axis=-1)
        label_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        return jnp.mean(log_z - label_logit)

    def train_step(params, mu, nu, count, inputs, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets)
        grad_norm = jnp.sqrt(sum(jnp.sum(g * g) for g in grads.values()))
        scale = jnp.minimum(MAX_GRAD_NORM / jnp.maximum(grad_norm, np.finfo(np.float32).tiny), 1.0)
        t = count.astype(jnp.float32) + 1.0
        new_params, new_mu, new_nu = {}, {}, {}
        for n in params:
            g = grads[n] * scale
            new_mu[n] = BETA1 * mu[n] + (1 - BETA1) * g
            new_nu[n] = BETA2 * nu[n] + (1 - BETA2) * g * g
            mu_hat = new_mu[n] / (1 - BETA1**t)
            nu_hat = new_nu[n] / (1 - BETA2**t)
            update = mu_hat / (jnp.sqrt(nu_hat) + ADAM_EPS)
            if params[n].ndim >= 2:
                update = update + WEIGHT_DECAY * params[n]
            new_params[n] = params[n] - LR * update
        return new_params, new_mu, new_nu, count + 1, loss, grad_norm

    return train_step


def main():
    args = parse_args()
    os.environ["JAX_PLATFORMS"] = "axleplugin"
    import jax
    from jax._src import xla_bridge

    xla_bridge.register_plugin(
        "axleplugin",
        priority=1000,
        library_path=args.plugin,
        options={"cpu_device_count": args.cpu_devices},
    )
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from safetensors.numpy import load_file

    (checkpoint,) = glob.glob(os.path.join(args.export, "step_*", "params.safetensors"))
    host_params = load_file(checkpoint)
    batches = np.load(os.path.join(args.export, "batches.npy"))
    with open(os.path.join(args.export, "shardings", f"{args.mesh}.json")) as f:
        shardings = json.load(f)["args"]
    if len(batches) < args.warmup + args.steps:
        raise SystemExit(f"{args.export} holds {len(batches)} batches, need {args.warmup + args.steps}")

    axes = [(a, int(n)) for a, n in (kv.split("=") for kv in args.mesh.split(","))]
    size = math.prod(n for _, n in axes)
    devices = np.array(jax.devices()[:size]).reshape([n for _, n in axes])
    mesh = Mesh(devices, tuple(a for a, _ in axes))

    def sharding(name):
        dims = [None if not d else (d[0] if len(d) == 1 else tuple(d)) for d in shardings[name]]
        return NamedSharding(mesh, PartitionSpec(*dims))

    names = sorted(host_params)
    num_layers = 1 + max(int(m.group(1)) for n in names if (m := re.search(r"layers/(\d+)/", n)))
    heads = HEADS[args.model]
    _, seq_plus_one = batches.shape[1:]
    seq = seq_plus_one - 1

    train_step = make_train_step(num_layers, heads)

    param_sh = {n: sharding(n) for n in names}
    mu_sh = {n: sharding(f"opt/mu/{n}") for n in names}
    nu_sh = {n: sharding(f"opt/nu/{n}") for n in names}
    count_sh = sharding("opt/step")
    ids_sh = sharding("input_ids")
    scalar = NamedSharding(mesh, PartitionSpec())
    jitted = jax.jit(
        train_step,
        in_shardings=(param_sh, mu_sh, nu_sh, count_sh, ids_sh, ids_sh),
        out_shardings=(param_sh, mu_sh, nu_sh, count_sh, scalar, scalar),
        donate_argnums=(0, 1, 2, 3),
    )
    f32 = lambda a: jax.ShapeDtypeStruct(a.shape, jnp.float32)
    ids = jax.ShapeDtypeStruct((batches.shape[1], seq), jnp.int32)
    abstract = ({n: f32(host_params[n]) for n in names},) * 3
    start = time.perf_counter()
    lowered = jitted.lower(*abstract, jax.ShapeDtypeStruct((), jnp.int32), ids, ids)
    lower_s = time.perf_counter() - start
    if args.dump_stablehlo:
        with open(args.dump_stablehlo, "w") as f:
            f.write(lowered.as_text())
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start

    params = {n: jax.device_put(host_params[n], param_sh[n]) for n in names}
    mu = {n: jax.device_put(np.zeros_like(host_params[n]), mu_sh[n]) for n in names}
    nu = {n: jax.device_put(np.zeros_like(host_params[n]), nu_sh[n]) for n in names}
    count = jax.device_put(np.int32(0), count_sh)
    losses, times = [], []
    for i in range(args.warmup + args.steps):
        tokens = batches[i]
        start = time.perf_counter()
        inputs = jax.device_put(tokens[:, :-1], ids_sh)
        targets = jax.device_put(tokens[:, 1:], ids_sh)
        params, mu, nu, count, loss, _ = compiled(params, mu, nu, count, inputs, targets)
        loss = float(loss)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
        losses.append(loss)
    times.sort()
    report = {
        "system": f"jax {jax.__version__}",
        "model": args.model,
        "mesh": args.mesh,
        "plugin": args.plugin,
        "platform_version": jax.devices()[0].client.platform_version,
        "trace_lower_s": lower_s,
        "compile_s": compile_s,
        "step_s": {"median": float(np.median(times)), "min": times[0], "max": times[-1]},
        "losses": losses,
    }
    text = json.dumps(report, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
