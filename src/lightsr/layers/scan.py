"""Selective scan (Mamba's S6 recurrence) in pure PyTorch, with a sequential reference and a fast
chunked form behind one function.

For each batch b, channel d and state n (diagonal A; Gu & Dao 2023, Mamba, eq. 2 discretised
by zero-order hold on A and Euler on B, exactly as mamba_ssm's ``selective_scan_ref``)::

    delta_t = softplus(delta_t + delta_bias)            (if delta_softplus)
    h_t     = exp(delta_t A) * h_{t-1} + delta_t B_t u_t
    y_t     = <C_t, h_t> + D u_t

Shapes follow mamba_ssm: ``u, delta: (b, d, L)``, ``A: (d, n)``, ``B, C: (b, n, L)`` or
``(b, g, n, L)`` with g groups dividing d, ``D, delta_bias: (d,)``; the result is ``(b, d, L)``.

Implementations (``impl``):

* ``"ref"`` — one step per token, a Python loop over L. Slow; the ground truth for tests.
* ``"chunked"`` — two-level scan (in segments of ~2M state elements, the state carried from
  segment to segment, so memory stays bounded). The sequence is cut into ``nc`` chunks of ``T`` (~ sqrt(L))
  tokens. (1) A local scan with zero initial state runs inside every chunk at once: T steps, each a
  vectorised update of all chunks. (2) The chunk-end states are carried across chunks: nc steps.
  (3) Each token gets its chunk's incoming state through the in-chunk cumulative decay
  ``exp(cumsum(delta A))``. Every ``exp`` argument is ``delta * A <= 0`` or a cumulative sum of
  such terms, so nothing overflows whatever the decay (the checkpoint's |A| reaches 34, where the
  naive ``exp(-cumsum)`` factorisation would overflow float32). Work and memory are O(L d n),
  like the reference, with T + nc ~ 2 sqrt(L) Python steps instead of L.
* ``"mamba_ssm"`` — the CUDA kernel, if that package is installed and the tensors are on CUDA.
* ``"auto"`` — ``mamba_ssm`` when available for these tensors, else ``chunked``.

FLOPs: the scan runs as the custom op ``torch.ops.lightsr.selective_scan`` so that
``torch.utils.flop_counter.FlopCounterMode`` sees it as one op. Its formula is the MambaIR / VMamba
authors' count of **9·B·L·D·N multiply-accumulates** (``flops_selective_scan_ref`` without the
D and z terms; fvcore counts a MAC as one "flop"), registered as ``2 * 9·B·L·D·N`` FLOPs because
FlopCounterMode counts a MAC as two FLOPs: ``FlopCounterMode total / 2`` therefore gives MACs
including the scan. Backward recomputes the forward under autograd (like activation
checkpointing), so gradients are exactly those of the chosen implementation.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

__all__ = ["selective_scan", "selective_scan_ref", "selective_scan_chunked", "scan_macs",
           "mamba_ssm_available"]

IMPLS = ("auto", "ref", "chunked", "mamba_ssm")


def mamba_ssm_available() -> bool:
    try:
        import mamba_ssm.ops.selective_scan_interface  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA build
        return False
    return True


def _prepare(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
             delta_bias: Optional[Tensor], delta_softplus: bool):
    """Float32 (or float64) inputs in the scan layout: delta (b, d, L); B, C (b, 1 or d, L, n)."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A = u.to(dtype), delta.to(dtype), A.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    d = u.shape[1]

    def groups(M: Tensor) -> Tensor:  # (b, n, L) | (b, g, n, L) -> (b, 1 | d, L, n)
        M = M.to(dtype)
        if M.dim() == 3:
            M = M.unsqueeze(1)
        if M.shape[1] not in (1, d):
            M = M.repeat_interleave(d // M.shape[1], dim=1)
        return M.transpose(-1, -2)

    return u, delta, A, groups(B), groups(C)


def selective_scan_ref(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                       D: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                       delta_softplus: bool = True) -> Tensor:
    """Sequential reference: one recurrence step per token (mamba_ssm's ``selective_scan_ref``)."""
    dtype = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    b, d, L = u.shape
    dA = torch.exp(delta[..., None] * A[:, None, :])          # (b, d, L, n): exp(delta_t A)
    dBu = (delta * u)[..., None] * B                           # (b, d, L, n): delta_t B_t u_t
    h = u.new_zeros(b, d, A.shape[1])
    hs = []
    for a_t, x_t in zip(dA.unbind(2), dBu.unbind(2)):  # unbind: backward is one stack, not L
        h = a_t * h + x_t
        hs.append(h)
    y = (torch.stack(hs, dim=2) * C).sum(-1)                   # y_t = <C_t, h_t>
    if D is not None:
        y = y + D.to(u.dtype)[:, None] * u
    return y.to(dtype)


# exp() of anything below this is flushed to exp(-80) ~ 1.8e-35 (a relative 1e-35 change) instead of
# producing float32 denormals, which are ~10x slower on CPUs
_EXP_FLOOR = -80.0


def _chunk_size(L: int) -> int:
    return max(1, min(L, int(math.ceil(math.sqrt(L)))))


def _scan_segment(delta: Tensor, u: Tensor, A: Tensor, B: Tensor, C: Tensor, h_init: Tensor,
                  chunk: Optional[int]) -> tuple[Tensor, Tensor]:
    """Two-level scan of one segment from state ``h_init`` (b, d, n); returns (y (b, d, L), h_L)."""
    b, d, L = u.shape
    n = A.shape[1]
    T = min(chunk or _chunk_size(L), L)
    nc = (L + T - 1) // T  # not -(-L // T): traced to ONNX, // of a negative number truncates
    pad = nc * T - L

    def chunks(t: Tensor) -> Tensor:  # (b, g, L[, n]) -> (T, b, g, [n,] nc); padded steps are 0
        if t.dim() == 4:
            t = t.transpose(-1, -2)
        t = F.pad(t, (0, pad)).unflatten(-1, (nc, T))
        return t.permute(t.dim() - 1, *range(t.dim() - 1)).contiguous()  # movedim(-1, 0); ONNX wants perm >= 0

    # layout (T, b, d, n, nc): step t of every chunk is one contiguous slice, chunks innermost
    dt, Bc, Cc = chunks(delta), chunks(B), chunks(C)
    log_a = dt.unsqueeze(-2) * A[:, :, None]                 # delta_t A <= 0; padding: 0
    x = (dt * chunks(u)).unsqueeze(-2) * Bc                   # delta_t B_t u_t; padding: 0
    inplace = not (torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C, h_init)))
    if inplace:
        # (1) local scans with zero initial state, all chunks at once: x[t] becomes h_local[t];
        # log_a[t] becomes the in-chunk cumulative sum of delta A
        for t in range(1, T):
            x[t].addcmul_(log_a[t].exp(), x[t - 1])
            log_a[t].add_(log_a[t - 1])
        decay = log_a.clamp_(min=_EXP_FLOOR).exp_()          # exp(cumsum) <= 1
        h_local = x
    else:
        a, xs = log_a.exp().unbind(0), x.unbind(0)
        hs = [xs[0]]
        for t in range(1, T):
            hs.append(a[t] * hs[-1] + xs[t])
        h_local = torch.stack(hs)
        decay = torch.exp(torch.cumsum(log_a, dim=0).clamp(min=_EXP_FLOOR))
    # (2) carry the state across chunks: h0[c] = state entering chunk c
    carry = [h_init]
    for a_c, h_c in zip(decay[-1].unbind(-1), h_local[-1].unbind(-1)):
        carry.append(a_c * carry[-1] + h_c)
    h_last = carry.pop()                                      # padded steps keep the state
    h0 = torch.stack(carry, dim=-1)                           # (b, d, n, nc)
    # (3) full states h_t = h_local_t + exp(cumsum) h0, outputs y_t = <C_t, h_t>
    if inplace:
        h = h_local.addcmul_(decay, h0).mul_(Cc)
    else:
        h = (h_local + decay * h0) * Cc
    return h.sum(-2).permute(1, 2, 3, 0).reshape(b, d, nc * T)[..., :L], h_last  # (T, b, d, nc) -> (b, d, nc, T)


# work buffers of at most this many elements: bounded memory for any L, and blocks small enough
# for the allocator to reuse instead of page-faulting fresh memory on every call
_SEGMENT_ELEMENTS = 1 << 21


def selective_scan_chunked(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                           D: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                           delta_softplus: bool = True, chunk: Optional[int] = None,
                           segment: Optional[int] = None) -> Tensor:
    """Chunked scan (see the module docstring); equal to the reference up to rounding.

    The sequence is processed in segments of ``segment`` tokens (default: ~2M state elements),
    the state carried from one to the next; inside a segment, the two-level scan with chunks of
    ``chunk`` tokens (default ~sqrt(segment)). Without autograd the buffers are updated in place.
    """
    dtype = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    b, d, L = u.shape
    n = A.shape[1]
    S = segment or max(1, _SEGMENT_ELEMENTS // (b * d * n))
    h = u.new_zeros(b, d, n)
    ys = []
    for s in range(0, L, S):
        e = min(L, s + S)
        y, h = _scan_segment(delta[..., s:e], u[..., s:e], A, B[:, :, s:e], C[:, :, s:e], h, chunk)
        ys.append(y)
    y = ys[0] if len(ys) == 1 else torch.cat(ys, -1)
    if D is not None:
        y = y + D.to(u.dtype)[:, None] * u
    return y.to(dtype)


def _run(u, delta, A, B, C, D, delta_bias, delta_softplus: bool, impl: str) -> Tensor:
    if impl == "auto":
        impl = "mamba_ssm" if u.is_cuda and mamba_ssm_available() else "chunked"
    if impl == "ref":
        return selective_scan_ref(u, delta, A, B, C, D, delta_bias, delta_softplus)
    if impl == "chunked":
        return selective_scan_chunked(u, delta, A, B, C, D, delta_bias, delta_softplus)
    if impl == "mamba_ssm":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        return selective_scan_fn(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(),
                                 C.contiguous(), D, z=None, delta_bias=delta_bias,
                                 delta_softplus=delta_softplus, return_last_state=False)
    raise ValueError(f"unknown selective-scan impl {impl!r}; choose from {IMPLS}")


# -- the custom op: one opaque node for FlopCounterMode, autograd by recomputation -------------

@torch.library.custom_op("lightsr::selective_scan", mutates_args=())
def _scan_op(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
             delta_bias: Optional[Tensor], delta_softplus: bool, impl: str) -> Tensor:
    return _run(u, delta, A, B, C, D, delta_bias, delta_softplus, impl)


@_scan_op.register_fake
def _(u, delta, A, B, C, D, delta_bias, delta_softplus, impl):
    return torch.empty_like(u)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*(t for t in inputs[:7] if t is not None))
    ctx.present = [t is not None for t in inputs[:7]]
    ctx.flags = inputs[7:]


def _backward(ctx, grad):
    saved = iter(ctx.saved_tensors)
    tensors = [next(saved) if p else None for p in ctx.present]
    leaves = [t.detach().requires_grad_(t.requires_grad) if t is not None else None for t in tensors]
    wanted = [t for t in leaves if t is not None and t.requires_grad]
    grads = {}
    if wanted:
        with torch.enable_grad():
            out = _run(*leaves, *ctx.flags)
            got = torch.autograd.grad(out, wanted, grad, allow_unused=True)
        grads = {id(t): g for t, g in zip(wanted, got)}
    return tuple(grads.get(id(t)) if t is not None else None for t in leaves) + (None, None)


_scan_op.register_autograd(_backward, setup_context=_setup_context)


def scan_macs(u_shape, A_shape) -> int:
    """MambaIR's count for one scan: 9·B·L·D·N multiply-accumulates."""
    b, d, L = u_shape
    return 9 * b * L * d * A_shape[-1]


@register_flop_formula(torch.ops.lightsr.selective_scan)
def _scan_flops(u_shape, delta_shape, A_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * scan_macs(u_shape, A_shape)  # FlopCounterMode counts 2 FLOPs per MAC


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                   D: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                   delta_softplus: bool = True, impl: str = "auto") -> Tensor:
    """The selective scan ``y = S6(u; delta, A, B, C, D)``; see the module docstring.

    u, delta: (b, d, L); A: (d, n); B, C: (b, n, L) or (b, g, n, L); D, delta_bias: (d,).
    ``impl``: ``"auto"`` | ``"ref"`` | ``"chunked"`` | ``"mamba_ssm"``. Returns (b, d, L) float32.
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown selective-scan impl {impl!r}; choose from {IMPLS}")
    if torch.onnx.is_in_onnx_export():  # the exporter traces plain tensor ops, not the custom op
        return _run(u, delta, A, B, C, D, delta_bias, bool(delta_softplus), "chunked" if impl == "auto" else impl)
    return _scan_op(u, delta, A, B, C, D, delta_bias, bool(delta_softplus), impl)
