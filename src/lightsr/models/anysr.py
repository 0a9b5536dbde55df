"""AnySR (Zhan et al.): any-scale, any-resource rebuilding of arbitrary-scale SR models.

A general transform: the backbone's residual blocks become width-sliced AnySR blocks (one weight
tensor; the sub-network F_t runs with the first floor(C * w_t) channels, AnySR section 3.2) with a
scale-aware channel attention fed by **feature interweaving** (section 3.3, eqs. 5-7); any implicit
head (LIIF, MetaSR, SRNO) is kept as it is. Registry: ``anysr_<head>_<backbone>``.

Scale groups (section 4.1): S1 = {1.1..1.7}, S2 = {1.8..2.5}, S3 = {2.6..3.2}, S4 = {3.3..4.0} with
widths {0.5, 0.7, 0.9, 1.0}; the group is chosen by max(s_h, s_w) rounded to 0.1; other scales
(1.0, > 4) use the full network. lambda = 4 (EDSR, C_in = 64) and 8 (RDN, C_in = 2G = 128): scale
pairs are inserted after every C_in / lambda = 16 pooled channels.

Where the seed and the official code (``CrispyFeSo4/AnySR``, design/architectures.md section 6)
differ, the seed is the default and the code's choice an option:

* RDN widths: seed {0.5, 0.7, 0.9, 1.0}; code 0.7/0.8/0.9/1.0 (``widths="official"``).
* Reset to the full network with probability p: seed Algorithm 1 line 4 applies it to every
  group; the code only to the smallest group (``reset_rule="smallest"``; :mod:`lightsr.train.anysr`).
* The code multiplies the scale token by -1 when 10 * max(s) is odd (``scale_sign_quirk=True``);
  the seed has no such sign.
* The code's EDSR-AnySR encoder subtracts the DIV2K mean (``mean_shift=True``); the SRNO/LIIF encoders
  it is initialised from do not, so the default here keeps the encoder of ``srno_edsr`` unchanged.

Any-resource inference (AnySR section 3.2 / Table 3): ``model.mode = "scale"`` (the paper's dagger:
the sub-network of the scale's group), ``"full"`` (double dagger: the whole network for every
scale), ``model.set_width(w)`` (a fixed sub-network; ``None`` restores the mode), or
``model.max_gflops = G`` (the widest sub-network whose *encoder* MACs for this input and scale are
<= G: Table 3 counts the encoder, and the implicit head, which runs on every output pixel whatever
the width, would otherwise dominate small inputs; ``model.cost`` and ``model.budget_report()`` give
the head's MACs beside the encoder's).
``model.width_for_scale(s)``, ``model.active_width(scale)``, ``model.width`` (the fixed width),
``model.active_parameters(scale)`` and ``model.macs(lr_size, scale, width, encoder_only)`` serve
``lightsr profile``; Table 3's FLOPs are the encoder's (``encoder_only=True``).

Training (Algorithm 1) lives on the training side, :mod:`lightsr.train.anysr` (the engine's step
hook ``lightsr.train.anysr:train_step_hook``; ``model.reset_p`` / ``model.reset_rule`` configure its
line 4); :func:`from_original` here maps the trained original's weights (``srno_edsr`` ...) for the warm start.
ArbSR (``anysr_arbsr_*``): its scale-aware adaption blocks stay full width.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import LightSRError
from ..layers.coords import ImplicitSR, output_size, parse_scale
from ..layers.slimmable import SlimConv2d
from .arbsr import ArbSRHead
from .edsr import EDSR
from .liif import LIIFHead
from .metasr import MetaSRHead
from .rdn import RDN
from .registry import register_model
from .srno import SRNOHead

SCALE_GROUPS: tuple[tuple[float, ...], ...] = tuple(
    tuple(round(0.1 * k, 1) for k in range(a, b + 1)) for a, b in ((11, 17), (18, 25), (26, 32), (33, 40)))
SEED_WIDTHS = (0.5, 0.7, 0.9, 1.0)
OFFICIAL_RDN_WIDTHS = (0.7, 0.8, 0.9, 1.0)


def scale_group(scale: float | Sequence[float]) -> int | None:
    """Index t (0-based) of the group S_t holding round(max(s_h, s_w), 1); None outside S."""
    s = round(max(parse_scale(scale)), 1)
    return next((t for t, g in enumerate(SCALE_GROUPS) if s in g), None)


# ----------------------------------------------------------------------------------------------
# scale-aware attention with feature interweaving (seed eqs. 5-7)
# ----------------------------------------------------------------------------------------------


def interweave(pooled: Tensor, token: Tensor, c_in: int, lam: int) -> Tensor:
    """Eq. 6: insert the scale pair after the pooled channels floor(C_in * i / lambda), for every
    boundary i = 1.. that the c = pooled.shape[1] available channels reach (i <= floor(lambda * w)).
    (B, c) -> (B, c + 2 * #boundaries); at C_in = 64, lambda = 4: 72 values at w = 1, 36 at 0.5,
    48 at 0.7 (c = 44), 63 at 0.9 (c = 57)."""
    c = pooled.shape[1]
    parts, start = [], 0
    for i in range(1, lam + 1):
        end = c_in * i // lam
        if end > c:
            break
        parts += [pooled[:, start:end], token]
        start = end
    parts.append(pooled[:, start:])
    return torch.cat(parts, dim=1)


def scale_aware_attention(f: Tensor, token: Tensor, fc1: SlimConv2d, fc2: SlimConv2d,
                          c_in: int, lam: int | None) -> Tensor:
    """Eq. 7 (eq. 5 with ``lam=None``, the "w/o FI" plain concatenation [f~, s_h, s_w]):
    Sigmoid(W2[:c] ReLU(W1[:, :len] f_bar)) with f_bar the interweaved global-average-pooled f."""
    pooled = f.mean(dim=(2, 3))
    fbar = interweave(pooled, token, c_in, lam) if lam else torch.cat([pooled, token], 1)
    hidden = F.relu(fc1(fbar[:, :, None, None]))
    return torch.sigmoid(fc2(hidden, out_used=f.shape[1]))


def _init_block(convs: Sequence[nn.Conv2d], scale: float = 0.1) -> None:
    """AnySR ``arch_util.initialize_weights(..., 0.1)``: Kaiming normal (fan_in) x 0.1, zero bias."""
    for m in convs:
        nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
        m.weight.data *= scale
        if m.bias is not None:
            m.bias.data.zero_()


class _ScaleAware(nn.Module):
    """Shared state of an AnySR block: the active width and the (B, 2) scale token."""

    width: float = 1.0
    token: Tensor | None = None

    def set_width(self, width: float) -> None:
        self.width = width
        for m in self.modules():
            if isinstance(m, SlimConv2d):
                m.width = width


class AnySRResBlock(_ScaleAware):
    """EDSR AnySR block (``ResidualBlock_noBN_anysr``, keys conv1/conv2/fc1/fc2):

        f_t = conv1(x)[:floor(C w)]                  first sub-block, width reduced
        f'  = f_t * SA(f_t, s)                        any-scale enhancement (eq. 7), optional
        y   = x + conv2(ReLU(f'))                     second sub-block restores C channels
    ``ase``: "fi" (feature interweaving), "concat" (w/o FI, eq. 5) or None (w/o ASE)."""

    def __init__(self, nf: int = 64, lam: int = 4, ase: str | None = "fi"):
        super().__init__()
        self.nf, self.lam, self.ase = nf, lam, ase
        self.conv1 = SlimConv2d(nf, nf, 3, slim_out=True)
        self.conv2 = SlimConv2d(nf, nf, 3, slim_in=True)
        convs = [self.conv1, self.conv2]
        if ase:
            self.fc1 = SlimConv2d(nf + (2 * lam if ase == "fi" else 2), 2 * nf, 1, slim_in=True)
            self.fc2 = SlimConv2d(2 * nf, nf, 1, slim_out=True)
            convs += [self.fc1, self.fc2]
        _init_block(convs)

    def forward(self, x: Tensor) -> Tensor:
        f = self.conv1(x)
        if self.ase:
            f = f * scale_aware_attention(f, self.token, self.fc1, self.fc2, self.nf,
                                          self.lam if self.ase == "fi" else None)
        return x + self.conv2(F.relu(f))


class _DenseConv(nn.Module):
    """RDB conv (keys conv.0): c = ReLU(Conv3x3(x)), returns [x, c]; optionally width-sliced."""

    def __init__(self, cin: int, growth: int, slim_in: bool = False, slim_out: bool = False):
        super().__init__()
        self.conv = nn.Sequential(SlimConv2d(cin, growth, 3, slim_in=slim_in, slim_out=slim_out), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv(x)], 1)


class AnySRRDB(_ScaleAware):
    """RDN AnySR block (``RDB_any``; keys convs.{j}.conv.0, LFF, fc1, fc2), the official layout:
    dense convs 0..C/2-1 plain; conv C/2 output-sliced; the following convs alternate input-sliced
    ("latter") and input+output-sliced ("former"); LFF input-sliced. The scale-aware attention
    (C_in = 2G, lambda = 8: fc1 2(G+8) -> 256, fc2 256 -> 2 floor(G w)) weights the channels after the
    first G0 + 6G of the dense stack. Slicing the *first* input columns of a dense conv whose input
    holds narrowed earlier outputs is the official behaviour; it makes the RDN sub-networks genuinely
    different networks (the zero-remainder identity of the EDSR blocks does not hold here)."""

    def __init__(self, g0: int = 64, growth: int = 64, n_convs: int = 8, lam: int = 8, ase: str | None = "fi"):
        super().__init__()
        self.g0, self.g, self.lam, self.ase = g0, growth, lam, ase
        half = n_convs // 2
        convs = [_DenseConv(g0 + i * growth, growth) for i in range(half)]
        convs.append(_DenseConv(g0 + half * growth, growth, slim_out=True))
        for c in range(n_convs - 1 - half):
            convs.append(_DenseConv(g0 + (half + 1 + c) * growth, growth, slim_in=True, slim_out=c % 2 == 1))
        self.convs = nn.Sequential(*convs)
        self.LFF = SlimConv2d(g0 + n_convs * growth, g0, 1, slim_in=True)
        if ase:
            self.fc1 = SlimConv2d(2 * growth + (2 * lam if ase == "fi" else 2), 256, 1, slim_in=True)
            self.fc2 = SlimConv2d(256, 2 * growth, 1, slim_out=True, out_groups=2)

    def forward(self, x: Tensor) -> Tensor:
        res = self.convs(x)
        if self.ase:
            split = self.g0 + 6 * self.g
            former, attn = res[:, :split], res[:, split:]
            attn = attn * scale_aware_attention(attn, self.token, self.fc1, self.fc2, 2 * self.g,
                                                self.lam if self.ase == "fi" else None)
            res = torch.cat([former, attn], 1)
        return self.LFF(res) + x


def _scale_text(scale: float | Sequence[float]) -> str:
    """``2.5`` or ``2x3`` (s_h x s_w) for messages."""
    sh, sw = parse_scale(scale)
    return f"{sh:g}" if sh == sw else f"{sh:g}x{sw:g}"


# ----------------------------------------------------------------------------------------------
# AnySR backbones and the continuous model
# ----------------------------------------------------------------------------------------------


class _AnySRBackbone:
    """Mixin for EDSR/RDN encoders whose blocks are AnySR blocks: width selection and scale token."""

    widths: tuple[float, ...]
    mode: str = "scale"
    fixed_width: float | None = None
    scale_sign_quirk: bool = False
    _scale: tuple[float, float] = (4.0, 4.0)

    def anysr_blocks(self) -> list[_ScaleAware]:
        return [m for m in self.modules() if isinstance(m, _ScaleAware)]  # type: ignore[attr-defined]

    def set_scale(self, s_h: float, s_w: float) -> None:
        self._scale = (float(s_h), float(s_w))

    def width_for_scale(self, scale: float | Sequence[float]) -> float:
        t = scale_group(scale)
        return 1.0 if t is None else self.widths[t]

    def active_width(self, scale: float | Sequence[float] | None = None) -> float:
        if self.fixed_width is not None:
            return self.fixed_width
        if self.mode == "full":
            return 1.0
        return self.width_for_scale(self._scale if scale is None else scale)

    def _prepare(self, x: Tensor) -> None:
        w = self.active_width()
        s = torch.tensor(self._scale, dtype=x.dtype, device=x.device)
        if self.scale_sign_quirk and round(10 * max(self._scale)) % 2 == 1:
            s = -s
        token = s.view(1, 2).expand(x.shape[0], 2)
        for blk in self.anysr_blocks():
            blk.set_width(w)
            blk.token = token


class EDSRAnySR(_AnySRBackbone, EDSR):
    """EDSR-baseline encoder (16 x 64) with AnySR residual blocks (lambda = 4)."""

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, lam: int = 4, ase: str | None = "fi",
                 widths: Sequence[float] = SEED_WIDTHS, mean_shift: bool = False, adapt_every: int | None = None):
        EDSR.__init__(self, None, n_resblocks, n_feats, mean_shift=mean_shift, adapt_every=adapt_every,
                      blocks=[AnySRResBlock(n_feats, lam, ase) for _ in range(n_resblocks)])
        self.widths = tuple(widths)

    def forward_features(self, x: Tensor) -> Tensor:
        self._prepare(x)
        return EDSR.forward_features(self, x)


class RDNAnySR(_AnySRBackbone, RDN):
    """RDN-B encoder with AnySR RDBs (lambda = 8 over C_in = 2G = 128 attended channels)."""

    def __init__(self, lam: int = 8, ase: str | None = "fi", widths: Sequence[float] = SEED_WIDTHS,
                 adapt_every: int | None = None):
        d, c, g = RDN.CONFIGS["B"]
        RDN.__init__(self, None, rdbs=[AnySRRDB(64, g, c, lam, ase) for _ in range(d)], adapt_every=adapt_every)
        self.widths = tuple(widths)

    def forward_features(self, x: Tensor) -> Tensor:
        self._prepare(x)
        return RDN.forward_features(self, x)


def count_macs(model: nn.Module, lr_size: tuple[int, int], scale: float | Sequence[float],
               width: float | None = None, encoder_only: bool = False) -> int:
    """Multiply-accumulates of one forward (torch.utils.flop_counter total / 2) on a meta-device
    copy, so nothing is computed. ``encoder_only``: the backbone (the scale-dependent part that
    Table 3's FLOPs track) without the head."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(model).to("meta")
    if width is not None:
        meta.set_width(width)
    meta.max_gflops = None
    meta.max_queries = 1 << 62  # one query chunk: chunking bounds memory, its recomputation is not work
    x = torch.empty(1, 3, *lr_size, device="meta")
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        if encoder_only:
            meta.features(meta._norm(x), parse_scale(scale))
        else:
            meta(x, scale=scale)
    return fc.get_total_flops() // 2


class AnySR(ImplicitSR):
    """An AnySR-rebuilt arbitrary-scale model: AnySR encoder + unchanged implicit head."""

    def __init__(self, backbone: _AnySRBackbone, head: nn.Module, mode: str = "scale",
                 width: float | None = None, max_gflops: float | None = None, reset_p: float = 0.6,
                 reset_rule: str = "all", **kw):
        super().__init__(backbone, head, **kw)  # type: ignore[arg-type]
        if not 0 <= reset_p <= 1 or reset_rule not in ("all", "smallest"):
            raise LightSRError(f"AnySR reset_p must be in [0, 1] and reset_rule 'all' or 'smallest'")
        self.reset_p, self.reset_rule = float(reset_p), reset_rule  # Algorithm 1 line 4 (training)
        if mode not in ("scale", "full"):
            raise LightSRError(f"AnySR mode must be 'scale' (dagger) or 'full' (double dagger), not {mode!r}")
        self.mode = mode
        self.set_width(width)
        if max_gflops is not None and not (isinstance(max_gflops, (int, float)) and max_gflops > 0):
            raise LightSRError(f"max_gflops must be a positive number, got {max_gflops!r}")
        self.max_gflops = max_gflops
        self._budget_cache: dict = {}
        self._macs_cache: dict = {}  # architecture-only: MACs do not depend on the weights

    # --- any-resource controls (used by eval / upscale / profile) ---
    @property
    def mode(self) -> str:
        return self.encoder.mode

    @mode.setter
    def mode(self, value: str) -> None:
        self.encoder.mode = value

    @property
    def widths(self) -> tuple[float, ...]:
        return self.encoder.widths

    def set_width(self, width: float | None) -> None:
        """Run a fixed sub-network (0 < w <= 1); ``None`` returns to the scale/full mode."""
        if width is not None and not 0 < float(width) <= 1:
            raise LightSRError(f"AnySR width must be in (0, 1], got {width}")
        self.encoder.fixed_width = None if width is None else float(width)

    def width_for_scale(self, scale: float | Sequence[float]) -> float:
        return self.encoder.width_for_scale(scale)

    @property
    def width(self) -> float | None:
        """The fixed sub-network width set by :meth:`set_width` (None: chosen by scale / mode)."""
        return self.encoder.fixed_width

    @torch.no_grad()
    def active_parameters(self, scale: float | Sequence[float] | None = None) -> int:
        """Parameters the active sub-network uses (width-sliced entries counted as sliced)."""
        scale = self.encoder._scale if scale is None else parse_scale(scale)
        meta = copy.deepcopy(self).to("meta")
        meta.max_gflops = None
        meta(torch.empty(1, 3, 4, 4, device="meta"), scale=scale)
        total = 0
        for m in meta.modules():
            for name, p in m.named_parameters(recurse=False):
                if isinstance(m, SlimConv2d):
                    cin, cout = m.last_used
                    total += cout * cin * p[0, 0].numel() if name == "weight" else cout
                else:
                    total += p.numel()
        return total

    def active_width(self, scale: float | Sequence[float] | None = None) -> float:
        return self.encoder.active_width(scale)

    def macs(self, lr_size: tuple[int, int], scale: float | Sequence[float], width: float | None = None,
             encoder_only: bool = False) -> int:
        """MACs of the sub-network that would run (or of ``width``) for this LR size and scale."""
        if width is None:
            width = self.active_width(scale)
        key = (tuple(lr_size), parse_scale(scale), float(width), encoder_only)
        if key not in self._macs_cache:
            self._macs_cache[key] = count_macs(self, lr_size, scale, width, encoder_only)
        return self._macs_cache[key]

    def cost(self, lr_size: tuple[int, int], scale: float | Sequence[float],
             width: float | None = None) -> tuple[int, int]:
        """(encoder MACs, head MACs) of one forward: the encoder is what Table 3 counts and what
        ``max_gflops`` budgets; the head runs on every output pixel whatever the width."""
        enc = self.macs(lr_size, scale, width, encoder_only=True)
        return enc, self.macs(lr_size, scale, width) - enc

    def width_for_budget(self, max_gflops: float, lr_size: tuple[int, int],
                         scale: float | Sequence[float]) -> float:
        """The widest sub-network whose encoder GMACs (Table 3's count) for this input are <= max_gflops."""
        key = (max_gflops, tuple(lr_size), parse_scale(scale))
        if key not in self._budget_cache:
            fits = [w for w in sorted(set(self.widths), reverse=True)
                    if self.macs(lr_size, scale, w, encoder_only=True) / 1e9 <= max_gflops]
            if not fits:
                enc, head = self.cost(lr_size, scale, min(self.widths))
                raise LightSRError(f"no AnySR sub-network fits {max_gflops:g} GFLOPs for a {lr_size[0]}x{lr_size[1]} "
                                   f"input at x{_scale_text(scale)}: the smallest (w = {min(self.widths):g}) needs "
                                   f"{enc / 1e9:.2f} G MACs in its encoder (the budgeted part; the "
                                   f"{type(self.head).__name__} adds {head / 1e9:.2f} G outside it)")
            self._budget_cache[key] = fits[0]
        return self._budget_cache[key]

    def budget_report(self) -> str | None:
        """One line on what ``max_gflops`` chose so far (None before any choice): the widths, the
        encoder's G MACs per forward (the budgeted part, already counted) and, beside them, the head's
        on the largest output (one more count, whatever the number of image sizes)."""
        if not self._budget_cache:
            return None
        chosen = self._budget_cache.items()
        enc = max(self.macs(size, scale, w, encoder_only=True) for (_, size, scale), w in chosen)
        out_px = lambda kv: torch.Size(output_size(*kv[0][1], kv[0][2])).numel()  # noqa: E731
        (budget, size, scale), w = max(chosen, key=out_px)
        head = self.cost(size, scale, w)[1]
        return (f"--max-gflops {budget:g} budgets the AnySR encoder (Table 3's count): sub-network width "
                f"{', '.join(f'{v:g}' for v in sorted(set(self._budget_cache.values())))}, encoder up to "
                f"{enc / 1e9:.2f} G MACs per forward; the {type(self.head).__name__} added up to {head / 1e9:.2f} G "
                f"outside the budget")

    def forward(self, x: Tensor, scale=None, coord=None, cell=None) -> Tensor:  # type: ignore[override]
        if self.max_gflops is None or self.encoder.fixed_width is not None:
            return super().forward(x, scale, coord, cell)
        if scale is None:
            raise LightSRError("max_gflops needs scale= to size the output")
        w = self.width_for_budget(self.max_gflops, tuple(x.shape[-2:]), scale)
        self.encoder.fixed_width = w
        try:
            return super().forward(x, scale, coord, cell)
        finally:
            self.encoder.fixed_width = None


# ----------------------------------------------------------------------------------------------
# initialisation from the trained original (Algorithm 1 itself: lightsr.train.anysr)
# ----------------------------------------------------------------------------------------------


# the only parameters AnySR adds to its original: the scale-aware attention MLPs of every block
NEW_PARAMETERS = ("encoder.*.fc1", "encoder.*.fc2")


def from_original(sd: dict) -> dict:
    """AnySR's warm start from its trained arbitrary-scale original (``srno_edsr`` -> ``anysr_srno_edsr``
    ..., AnySR section 4.1) as a filter for :func:`lightsr.checkpoint.warm_start`: EDSR ResBlock keys
    ``body.{i}.body.{0,2}`` become the AnySR block's ``conv1`` / ``conv2``; with ``fresh=NEW_PARAMETERS``
    the attention MLPs keep their initialisation and anything else that differs is refused."""
    import re

    return {re.sub(r"^encoder\.body\.(\d+)\.body\.([02])\.",
                   lambda m: f"encoder.body.{m[1]}.conv{1 if m[2] == '0' else 2}.", k): v for k, v in sd.items()}


# ----------------------------------------------------------------------------------------------
# registry: anysr_<head>_<backbone>
# ----------------------------------------------------------------------------------------------

_HEADS = {"liif": LIIFHead, "metasr": MetaSRHead, "srno": SRNOHead, "arbsr": ArbSRHead}


def build_anysr(head: str, backbone: str, *, ase: str | None = "fi", lam: int | None = None,
                widths: Sequence[float] | str = SEED_WIDTHS, mode: str = "scale", width: float | None = None,
                max_gflops: float | None = None, scale_sign_quirk: bool = False, mean_shift: bool = False,
                reset_p: float = 0.6, reset_rule: str = "all", max_queries: int = 65536) -> AnySR:
    """AnySR transform of ``<head>_<backbone>``; options as in the module docstring."""
    if ase in ("none", "None", False):
        ase = None
    if ase not in ("fi", "concat", None):
        raise LightSRError(f"ase must be 'fi', 'concat' or 'none', not {ase!r}")
    if widths == "official":
        widths = OFFICIAL_RDN_WIDTHS if backbone == "rdn" else SEED_WIDTHS
    widths = tuple(float(w) for w in widths)  # type: ignore[union-attr]
    if len(widths) != len(SCALE_GROUPS):
        raise LightSRError(f"AnySR needs {len(SCALE_GROUPS)} widths, got {widths}")
    from .arbitrary import ARBSR_K

    k = ARBSR_K if head == "arbsr" else None  # ArbSR's scale-aware adaption stays full width
    if backbone == "edsr":
        enc: nn.Module = EDSRAnySR(lam=lam or 4, ase=ase, widths=widths, mean_shift=mean_shift, adapt_every=k)
    else:
        enc = RDNAnySR(lam=lam or 8, ase=ase, widths=widths, adapt_every=k)
    enc.scale_sign_quirk = scale_sign_quirk
    return AnySR(enc, _HEADS[head](enc.out_dim), mode=mode, width=width, max_gflops=max_gflops,
                 reset_p=reset_p, reset_rule=reset_rule, max_queries=max_queries)


# weights trained here (experiments/anysr_study.py, results/anysr.md): one file for every scale,
# filed under x4 (a continuous model's shipped weights are looked up at its default scale)
SHIPPED = {("srno", "edsr"): "anysr_srno_edsr.safetensors"}


def _register(head: str, backbone: str) -> None:
    def builder(scale: float | None = None, **opts) -> AnySR:
        # ``scale`` (the registry's default/evaluation scale) does not change a continuous model
        return build_anysr(head, backbone, **opts)

    builder.__name__ = f"anysr_{head}_{backbone}"
    builder.__doc__ = f"AnySR-rebuilt {head.upper()} on {backbone.upper()} (any-scale, any-resource)."
    shipped = SHIPPED.get((head, backbone))
    register_model(builder.__name__, scales=None, paper="Zhan et al., AnySR: Realizing Image Super-Resolution as Any-Scale, Any-Resource",
                   family="arbitrary-scale", key_filter=from_original, fresh=NEW_PARAMETERS,
                   pretrained={4: shipped} if shipped else None)(builder)


for _h in _HEADS:
    for _b in ("edsr", "rdn"):
        _register(_h, _b)
