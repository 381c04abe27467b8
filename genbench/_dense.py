"""A frozen network's affine layers folded into dense matrices, for the small inputs where that is faster.

A stack such as DCGAN's generator on 8x8 images (linear, batch norm, transposed convolutions) is, in
eval mode, a chain of affine maps with element-wise non-linearities between them. On a CPU each
small convolution costs far more than its arithmetic (8x8 digits: about 3x a matrix product of the
same size, forward and backward), and batch norm is one more pass. :func:`fold_affine` turns the chain
into ``x @ W + b`` stages, one per non-linearity: a (transposed) convolution's matrix is read off by
passing the identity basis through it, so its entries are the kernel's weights themselves, and a batch
norm's eval-mode scale and shift are folded into the map before it. The values equal the layers' to
float rounding (the sums run in another order).

:class:`FoldedForward` keeps one folding per version of the weights, and is used only where nothing
can need the weights' gradients (eval mode with gradients off, or the parameters frozen as AIS freezes
them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: layers applied element-wise: they end a folded stage and run as they are
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.SiLU, nn.Softplus)
#: the default size limit of a folding, in matrix entries (16 MB of float32)
MAX_ENTRIES = 1 << 22


class Folded(nn.Module):
    """``stages`` of ``(W (in, out), b (out,), activations)`` applied to flattened inputs."""

    def __init__(self, stages: Sequence[tuple[torch.Tensor, torch.Tensor, Sequence[nn.Module]]],
                 out_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.stages = [(w, b, tuple(acts)) for w, b, acts in stages]
        self.out_shape = tuple(out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(len(x), -1)
        for w, b, acts in self.stages:
            h = torch.addmm(b, h, w)
            for act in acts:
                h = act(h)
        return h.reshape(len(x), *self.out_shape)


def _linear_map(layer: nn.Module, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]] | None:
    """(W (in, out), b (out,), output shape) of a linear or convolution layer on inputs of ``shape``, or None."""
    if not isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
        return None
    p = layer.weight
    if isinstance(layer, nn.Linear):
        if len(shape) != 1:
            return None
        b = layer.bias if layer.bias is not None else p.new_zeros(layer.out_features)
        return layer.weight.T, b, (layer.out_features,)
    if len(shape) != 3 or (isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros"):
        return None
    n_in = math.prod(shape)
    eye = torch.eye(n_in, dtype=p.dtype, device=p.device).reshape(n_in, *shape)
    # the identity basis through the layer without its bias: row i is the layer's response to input i
    if isinstance(layer, nn.Conv2d):
        out = F.conv2d(eye, p, None, layer.stride, layer.padding, layer.dilation, layer.groups)
    else:
        out = F.conv_transpose2d(eye, p, None, layer.stride, layer.padding, layer.output_padding, layer.groups,
                                 layer.dilation)
    out_shape = tuple(out.shape[1:])
    hw = out_shape[1] * out_shape[2]
    b = layer.bias.repeat_interleave(hw) if layer.bias is not None else p.new_zeros(out[0].numel())
    return out.reshape(n_in, -1), b, out_shape


def _batch_norm(layer: nn.Module, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Eval-mode batch norm as a per-input scale and shift, or None."""
    if not isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d) or layer.running_mean is None:
        return None
    scale = torch.rsqrt(layer.running_var + layer.eps)
    if layer.affine:
        scale = scale * layer.weight
    shift = -layer.running_mean * scale + (layer.bias if layer.affine else 0)
    per = math.prod(shape) // len(scale)
    return scale.repeat_interleave(per), shift.repeat_interleave(per)


def fold_affine(layers: Sequence[nn.Module], in_shape: Sequence[int], *,
                max_entries: int = MAX_ENTRIES) -> Folded | None:
    """The eval-mode equivalent of ``nn.Sequential(*layers)`` on inputs of ``in_shape`` (per example), as
    dense stages; None when a layer is not one folding knows, or the matrices would pass ``max_entries``.

    Known layers: ``Linear``, ``Conv2d`` (zero padding), ``ConvTranspose2d``, eval-mode ``BatchNorm1d`` /
    ``BatchNorm2d`` with running statistics, ``Unflatten`` / ``Flatten``, and element-wise activations
    (ReLU, LeakyReLU, Tanh, Sigmoid, ELU, SiLU, Softplus, Identity). Consecutive affine layers are
    multiplied into one matrix; an activation ends a stage. No gradient reaches the layers' weights
    through the result.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)).eval()
    >>> folded = fold_affine(list(net), (3,))
    >>> x = torch.randn(5, 3)
    >>> bool(torch.allclose(folded(x), net(x), atol=1e-6))
    True
    """
    shape = tuple(int(s) for s in in_shape)
    stages: list[tuple[torch.Tensor, torch.Tensor, list[nn.Module]]] = []
    w: torch.Tensor | None = None
    b: torch.Tensor | None = None
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, nn.Identity):
                continue
            if isinstance(layer, nn.Flatten | nn.Unflatten):
                shape = tuple(layer(torch.empty(1, *shape, device="meta")).shape[1:])
                continue
            if isinstance(layer, _ELEMENTWISE):
                if w is not None:
                    stages.append((w, b, [layer]))
                    w = b = None
                elif stages:
                    stages[-1][2].append(layer)
                else:  # an activation before any affine map: nothing to fold it into
                    return None
                continue
            bn = _batch_norm(layer, shape)
            if bn is not None:
                scale, shift = bn
                if w is None:
                    w, b = torch.diag(scale), shift.clone()
                else:
                    w, b = w * scale, b * scale + shift
                continue
            if math.prod(shape) ** 2 > 4 * max_entries:  # the identity basis alone would be too large
                return None
            got = _linear_map(layer, shape)
            if got is None:
                return None
            lw, lb, shape = got
            w, b = (lw.clone(), lb.clone()) if w is None else (w @ lw, b @ lw + lb)
            if sum(s[0].numel() for s in stages) + w.numel() > max_entries:
                return None
        if w is not None:
            stages.append((w, b, []))
    if not stages:
        return None
    return Folded([(sw.contiguous(), sb.contiguous(), acts) for sw, sb, acts in stages], shape)


class FoldedForward:
    """A module's folded forward, for the moments it may stand in for the module, rebuilt when the weights
    change (a parameter or buffer rewritten in place, moved or replaced).

    ``current(module, build)`` returns the :class:`Folded` stack for the current weights (``build()``
    makes it), or None when the module must run its own layers: in training mode, when a gradient could
    reach its parameters (gradients on and a parameter requiring them), while being traced or compiled,
    or when its layers do not fold. It holds only a cache: copies and pickles start without one.
    """

    def __init__(self) -> None:
        self._slots: list[tuple[dict, str, bool]] | None = None
        self._key: tuple | None = None
        self._folded: Folded | None = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def __deepcopy__(self, memo: dict) -> FoldedForward:
        return FoldedForward()

    def current(self, module: nn.Module, build: Callable[[], Folded | None]) -> Folded | None:
        if module.training or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return None
        if self._slots is None:  # where each tensor lives, so that a replaced parameter is seen too
            self._slots = [(d, name, d is m._parameters) for m in module.modules()
                           for d in (m._parameters, m._buffers) for name in d]
        tensors = [(d[name], is_param) for d, name, is_param in self._slots]
        if torch.is_grad_enabled() and any(is_param and t is not None and t.requires_grad for t, is_param in tensors):
            return None
        key = tuple(None if t is None else (id(t), t.data_ptr(), t._version, t.dtype, t.device) for t, _ in tensors)
        if key != self._key:
            self._folded, self._key = build(), key
        return self._folded
