"""Public hand-written gradient rules, copied at fixed commits for bench/frameworks.py.

Each rule's code is as its authors wrote it, except where noted (``@torch.jit.script`` dropped:
the math is unchanged; ``ctx.saved_variables``, deprecated, read as ``saved_tensors``). Every
entry records where it came from. ``deliberate`` marks rules that are on purpose not the
gradient of their forward (straight-through estimators, gradient reversal, gradient clipping):
a checker must fail them, and can only say why.

Importing this module imports torch and JAX; bench/frameworks.py imports it only when both are
installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Rule:
    """A rule to check: ``call(**inputs)`` with inputs of ``shapes`` (drawn at ``scale``)."""

    name: str
    framework: str  # "torch" or "jax"
    call: Any  # a function of named arrays (torch tensors or JAX arrays)
    shapes: dict[str, tuple[int, ...]]
    source: str  # URL at a commit
    deliberate: str = ""  # why it is on purpose not the gradient, or ""
    scale: float = 1.0
    # the Function or custom_vjp whose backward the bench plants bugs in (torch: a class)
    rule: Any = None
    extra: dict[str, Any] = field(default_factory=dict)  # settings passed to rule.apply


# --- timm: memory-efficient activations -------------------------------------------------------
# https://github.com/huggingface/pytorch-image-models/blob/b070b091b285e770708acaa0775dffc729618799/timm/layers/activations_me.py
TIMM = ("https://github.com/huggingface/pytorch-image-models/blob/"
        "b070b091b285e770708acaa0775dffc729618799/timm/layers/activations_me.py")


def swish_jit_fwd(x):
    return x.mul(torch.sigmoid(x))


def swish_jit_bwd(x, grad_output):
    x_sigmoid = torch.sigmoid(x)
    return grad_output * (x_sigmoid * (1 + x * (1 - x_sigmoid)))


class SwishJitAutoFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return swish_jit_fwd(x)

    @staticmethod
    def backward(ctx, grad_output):
        x = ctx.saved_tensors[0]
        return swish_jit_bwd(x, grad_output)


def mish_jit_fwd(x):
    return x.mul(torch.tanh(F.softplus(x)))


def mish_jit_bwd(x, grad_output):
    x_sigmoid = torch.sigmoid(x)
    x_tanh_sp = F.softplus(x).tanh()
    return grad_output.mul(x_tanh_sp + x * x_sigmoid * (1 - x_tanh_sp * x_tanh_sp))


class MishJitAutoFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return mish_jit_fwd(x)

    @staticmethod
    def backward(ctx, grad_output):
        x = ctx.saved_tensors[0]
        return mish_jit_bwd(x, grad_output)


def hard_sigmoid_jit_fwd(x, inplace: bool = False):
    return (x + 3).clamp(min=0, max=6).div(6.)


def hard_sigmoid_jit_bwd(x, grad_output):
    m = torch.ones_like(x) * ((x >= -3.) & (x <= 3.)) / 6.
    return grad_output * m


class HardSigmoidJitAutoFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return hard_sigmoid_jit_fwd(x)

    @staticmethod
    def backward(ctx, grad_output):
        x = ctx.saved_tensors[0]
        return hard_sigmoid_jit_bwd(x, grad_output)


def hard_swish_jit_fwd(x):
    return x * (x + 3).clamp(min=0, max=6).div(6.)


def hard_swish_jit_bwd(x, grad_output):
    m = torch.ones_like(x) * (x >= 3.)
    m = torch.where((x >= -3.) & (x <= 3.),  x / 3. + .5, m)
    return grad_output * m


class HardSwishJitAutoFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return hard_swish_jit_fwd(x)

    @staticmethod
    def backward(ctx, grad_output):
        x = ctx.saved_tensors[0]
        return hard_swish_jit_bwd(x, grad_output)


def hard_mish_jit_fwd(x):
    return 0.5 * x * (x + 2).clamp(min=0, max=2)


def hard_mish_jit_bwd(x, grad_output):
    m = torch.ones_like(x) * (x >= -2.)
    m = torch.where((x >= -2.) & (x <= 0.), x + 1., m)
    return grad_output * m


class HardMishJitAutoFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return hard_mish_jit_fwd(x)

    @staticmethod
    def backward(ctx, grad_output):
        x = ctx.saved_tensors[0]
        return hard_mish_jit_bwd(x, grad_output)


# --- NAFNet: a fused LayerNorm over channels (NCHW) -------------------------------------------
NAFNET = ("https://github.com/megvii-research/NAFNet/blob/"
          "47b3a159855eff52a7aeaab4bbb6986ae0be4528/basicsr/models/archs/arch_util.py")


class LayerNormFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        ctx.eps = eps
        N, C, H, W = x.size()
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + eps).sqrt()
        ctx.save_for_backward(y, var, weight)
        y = weight.view(1, C, 1, 1) * y + bias.view(1, C, 1, 1)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        eps = ctx.eps

        N, C, H, W = grad_output.size()
        y, var, weight = ctx.saved_tensors  # the source: ctx.saved_variables (deprecated)
        g = grad_output * weight.view(1, C, 1, 1)
        mean_g = g.mean(dim=1, keepdim=True)

        mean_gy = (g * y).mean(dim=1, keepdim=True)
        gx = 1. / torch.sqrt(var + eps) * (g - y * mean_gy - mean_g)
        return gx, (grad_output * y).sum(dim=3).sum(dim=2).sum(dim=0), grad_output.sum(dim=3).sum(
            dim=2).sum(dim=0), None


# --- a straight-through estimator (DCLS) ------------------------------------------------------
DCLS = ("https://github.com/aras-ai/Dilated-Convolution-with-Learnable-Spacings-PyTorch/blob/"
        "2d7b01fb298528c90b87aef1868e3897de399316/DCLS/construct/helpers.py")


class STEFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        return torch.round(input)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


# --- gradient reversal (DANN) -----------------------------------------------------------------
DANN = ("https://github.com/Damon-X46/DANN/blob/409cd44cc01cb06293344f6c30b8878d155b7a17/"
        "models/functions.py")


class ReverseLayerF(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha

        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        output = grad_output.neg() * ctx.alpha

        return output, None


# --- JAX: the custom-derivative tutorial and a stable norm ------------------------------------
JAX_DOCS = ("https://github.com/jax-ml/jax/blob/ce92e479702b0642060c364b403675762eb22b1e/docs/"
            "notebooks/Custom_derivative_rules_for_Python_code.md")


@jax.custom_jvp
def log1pexp(x):
    return jnp.log(1. + jnp.exp(x))


@log1pexp.defjvp
def log1pexp_jvp(primals, tangents):
    x, = primals
    x_dot, = tangents
    ans = log1pexp(x)
    ans_dot = (1 - 1/(1 + jnp.exp(x))) * x_dot
    return ans, ans_dot


@jax.custom_vjp
def f(x, y):
    return jnp.sin(x) * y


def f_fwd(x, y):
    # Returns primal output and residuals to be used in backward pass by f_bwd.
    return f(x, y), (jnp.cos(x), jnp.sin(x), y)


def f_bwd(res, g):
    cos_x, sin_x, y = res  # Gets residuals computed in f_fwd
    return (cos_x * g * y, sin_x * g)


f.defvjp(f_fwd, f_bwd)


@jax.custom_vjp
def clip_gradient(lo, hi, x):
    return x  # identity function


def clip_gradient_fwd(lo, hi, x):
    return x, (lo, hi)  # save bounds as residuals


def clip_gradient_bwd(res, g):
    lo, hi = res
    return (None, None, jnp.clip(g, lo, hi))  # use None to indicate zero cotangents for lo and hi


clip_gradient.defvjp(clip_gradient_fwd, clip_gradient_bwd)

NORM = ("https://github.com/quattro/jax-numerics-agent/blob/"
        "edef9c19870f123d6f3295318ea2481f8f27cc26/snippets/custom_jvp_norm.py")


@jax.custom_jvp
def stable_norm(x):
    return jnp.sqrt(jnp.sum(x * x))


@stable_norm.defjvp
def _stable_norm_jvp(primals, tangents):
    (x,), (tx,) = primals, tangents
    y = stable_norm(x)
    denom = jnp.where(y == 0, 1.0, y)
    return y, jnp.where(y == 0, 0.0, jnp.vdot(x, tx) / denom)


# --- the catalogue ----------------------------------------------------------------------------

def _activation(name: str, fn: Any, scale: float = 1.0) -> Rule:
    return Rule(name, "torch", lambda x: fn.apply(x), {"x": (6, 8)}, TIMM, scale=scale, rule=fn)


RULES = [
    _activation("timm SwishJitAutoFn", SwishJitAutoFn),
    _activation("timm MishJitAutoFn", MishJitAutoFn),
    _activation("timm HardSigmoidJitAutoFn", HardSigmoidJitAutoFn, scale=3.0),
    _activation("timm HardSwishJitAutoFn", HardSwishJitAutoFn, scale=3.0),
    _activation("timm HardMishJitAutoFn", HardMishJitAutoFn, scale=2.0),
    Rule("NAFNet LayerNormFunction", "torch",
         lambda x, weight, bias: LayerNormFunction.apply(x, weight, bias, 1e-6),
         {"x": (2, 4, 3, 3), "weight": (4,), "bias": (4,)}, NAFNET, rule=LayerNormFunction,
         extra={"eps": 1e-6}),
    Rule("DCLS STEFunction", "torch", lambda x: STEFunction.apply(x), {"x": (6, 8)}, DCLS,
         deliberate="straight-through estimator (round forward, identity backward)", scale=3.0,
         rule=STEFunction),
    Rule("DANN ReverseLayerF", "torch", lambda x: ReverseLayerF.apply(x, 1.0), {"x": (6, 8)},
         DANN, deliberate="gradient reversal (identity forward, -alpha backward)",
         rule=ReverseLayerF),
    Rule("jax docs log1pexp (custom_jvp)", "jax", lambda x: log1pexp(x), {"x": (6, 8)},
         JAX_DOCS, scale=3.0),
    Rule("jax docs f (custom_vjp)", "jax", lambda x, y: f(x, y), {"x": (6, 8), "y": (6, 8)},
         JAX_DOCS),
    Rule("stable_norm (custom_jvp)", "jax", lambda x: stable_norm(x), {"x": (6, 8)}, NORM),
    Rule("jax docs clip_gradient (custom_vjp)", "jax", lambda x: clip_gradient(-0.5, 0.5, x),
         {"x": (6, 8)}, JAX_DOCS,
         deliberate="gradient clipping (identity forward, clipped backward)"),
]
