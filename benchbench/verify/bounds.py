"""From a model to the network the verifiers bound: chains of affine ops between ReLUs.

``model_layers`` reads the layers of an ``nn.Sequential`` (nested ones flattened) or of a model
with a ``layers()`` method returning them in order. ``check_layers`` refuses, before anything
runs, a layer a verifier does not declare, naming it (``VerifierError: crown cannot bound layer
3 (MaxPool2d); supported: ...``). ``build_network`` turns the layers into float64 ops
(``benchbench.verify.ops``) grouped into chains: ``chain_0, ReLU, chain_1, ReLU, ...,
chain_L``; chain ``i``'s output is the pre-activation of ReLU ``i`` (the last chain's: the
logits). Batch norm and dropout are taken in eval mode (running statistics; no dropout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchbench.errors import VerifierError

LAYERS = ("Linear", "Conv2d", "ReLU", "Flatten", "BatchNorm1d", "BatchNorm2d", "AvgPool2d",
          "Normalize", "Identity", "Dropout")
"""Every layer kind ``build_network`` can turn into ops: what the built-in verifiers declare."""


def _kinds():
    from torch import nn

    from benchbench.verify.normalize import Normalize

    return {"Linear": nn.Linear, "Conv2d": nn.Conv2d, "ReLU": nn.ReLU, "Flatten": nn.Flatten,
            "BatchNorm1d": nn.BatchNorm1d, "BatchNorm2d": nn.BatchNorm2d,
            "AvgPool2d": nn.AvgPool2d, "Normalize": Normalize, "Identity": nn.Identity,
            "Dropout": nn.Dropout}


def layer_kind(layer) -> str | None:
    """The kind of ``layer`` among ``LAYERS``, or None: an instance of the class whose
    ``forward`` it keeps (a subclass with its own ``forward`` computes something else)."""
    for name, cls in _kinds().items():
        if isinstance(layer, cls) and type(layer).forward is cls.forward:
            return name
    return None


def model_layers(model) -> list:
    """The layers of ``model`` in order (nested ``nn.Sequential`` flattened)."""
    from torch import nn

    if isinstance(model, nn.Sequential):
        layers = list(model)
    elif callable(getattr(model, "layers", None)):
        layers = list(model.layers())
    else:
        raise VerifierError(f"cannot read the layers of {type(model).__name__}: verifiers take "
                            "an nn.Sequential or a model whose layers() returns its layers in "
                            "order")
    out = []
    for layer in layers:
        out.extend(model_layers(layer) if isinstance(layer, nn.Sequential) else [layer])
    return out


def _problem(layer, kind: str) -> str | None:
    """What makes a layer of a supported kind unsupported anyway (a setting), or None."""
    if kind == "Conv2d":
        if layer.padding_mode != "zeros":
            return f"padding_mode={layer.padding_mode!r}; only 'zeros'"
        if layer.padding == "same" and any(d * (k - 1) % 2 for d, k in
                                           zip(layer.dilation, layer.kernel_size, strict=True)):
            return "padding='same' with an even kernel (asymmetric padding)"
    if kind == "AvgPool2d":
        if layer.ceil_mode or layer.divisor_override is not None:
            return "ceil_mode or divisor_override set"
        if not layer.count_include_pad and _pair(layer.padding) != (0, 0):
            return "count_include_pad=False with padding"
    if kind in ("BatchNorm1d", "BatchNorm2d") and layer.running_mean is None:
        return "no running statistics (track_running_stats=False)"
    return None


def check_layers(model, supported=LAYERS, *, verifier: str = "crown") -> list:
    """The layers of ``model``, or VerifierError naming the first one ``verifier`` does not
    support (its index, class and why)."""
    layers = model_layers(model)
    allowed = ", ".join(supported)
    for i, layer in enumerate(layers):
        kind = layer_kind(layer)
        if kind is None:  # a kind of a plugin's own, by class name (never one of LAYERS':
            kind = type(layer).__name__  # a class so named computes something else)
            kind = f"{kind} (not torch's)" if kind in LAYERS else kind
        if kind not in supported:
            raise VerifierError(f"{verifier} cannot bound layer {i} ({type(layer).__name__}); "
                                f"supported: {allowed}")
        problem = _problem(layer, kind)
        if problem:
            raise VerifierError(f"{verifier} cannot bound layer {i} ({type(layer).__name__}: "
                                f"{problem}); supported: {allowed}")
    return layers


def _pair(v):
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


@dataclass
class Network:
    """``chains[0]``, ReLU, ``chains[1]``, ..., ReLU, ``chains[-1]`` in float64."""

    chains: list[list]
    in_shape: tuple[int, ...]
    shapes: list[tuple[int, ...]]  # the output shape of each chain
    # chain index -> its dense ``(W, b)`` (``ops.chain_dense``), or None where too large: filled
    # by CROWN on first use (``crown._select``)
    dense: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def relus(self) -> int:
        return len(self.chains) - 1

    def forward(self, x):
        from benchbench.verify.ops import chain_forward

        for i, chain in enumerate(self.chains):
            x = chain_forward(chain, x)
            if i < self.relus:
                x = x.clamp(min=0)
        return x


def _op(layer, kind: str, shape: tuple[int, ...], index: int):
    """The float64 op for one layer (None for identities), checked against its input shape."""
    import torch

    from benchbench.verify import ops

    def d(t):
        return None if t is None else t.detach().to(torch.float64)

    if kind == "Linear":
        if shape != (layer.in_features,):
            raise VerifierError(f"layer {index} (Linear) takes {layer.in_features} features; "
                                f"its input has shape {list(shape)} (a Flatten missing?)")
        return ops.Linear(d(layer.weight), d(layer.bias))
    if kind in ("Conv2d", "AvgPool2d"):
        if len(shape) != 3:
            raise VerifierError(f"layer {index} ({kind}) takes [C, H, W] inputs; got "
                                f"{list(shape)}")
        if kind == "Conv2d":
            padding = layer.padding
            if padding == "valid":
                padding = (0, 0)
            elif padding == "same":
                padding = tuple(dl * (k - 1) // 2 for dl, k in
                                zip(layer.dilation, layer.kernel_size, strict=True))
            return ops.Conv(d(layer.weight), d(layer.bias), stride=layer.stride, padding=padding,
                            dilation=layer.dilation, groups=layer.groups, in_shape=shape)
        kh, kw = _pair(layer.kernel_size)
        weight = torch.full((shape[0], 1, kh, kw), 1.0 / (kh * kw), dtype=torch.float64)
        return ops.Conv(weight, None, stride=_pair(layer.stride or layer.kernel_size),
                        padding=_pair(layer.padding), dilation=(1, 1), groups=shape[0],
                        in_shape=shape)
    if kind in ("BatchNorm1d", "BatchNorm2d", "Normalize"):
        if kind == "Normalize":
            scale, shift = 1.0 / d(layer.std), -d(layer.mean) / d(layer.std)
        else:
            scale = d(layer.running_var).add(layer.eps).rsqrt()
            if layer.weight is not None:
                scale = scale * d(layer.weight)
            shift = -d(layer.running_mean) * scale
            if layer.bias is not None:
                shift = shift + d(layer.bias)
            extra = len(shape) - 1
            scale, shift = (t.reshape(-1, *[1] * extra) for t in (scale, shift))
        try:  # per example: a leading batch dimension of 1 (``[1, C, 1, 1]``) is allowed
            fits = torch.broadcast_shapes(scale.shape, shift.shape, (1, *shape)) == (1, *shape)
        except RuntimeError:
            fits = False
        if not fits:
            raise VerifierError(f"layer {index} ({kind}) does not fit its input of shape "
                                f"{list(shape)}: its statistics have shape {list(scale.shape)}")
        one = (1, *shape)
        return ops.Scale(scale.expand(one)[0], shift.expand(one)[0], shape)
    if kind == "Flatten":
        probe = torch.zeros((1, *shape))
        return ops.Reshape(shape, layer(probe).shape[1:])
    if kind in ("Identity", "Dropout"):
        return None  # eval mode: the identity
    raise VerifierError(f"benchbench's bounds cannot bound layer {index} ({kind}); supported: "
                        f"{', '.join(LAYERS)}")


def build_network(model, in_shape, *, supported=LAYERS, verifier: str = "crown") -> Network:
    """``model`` (checked by ``check_layers``) as a float64 ``Network`` for inputs of
    per-example shape ``in_shape``."""
    layers = check_layers(model, tuple(k for k in supported if k in LAYERS), verifier=verifier)
    shape = tuple(in_shape)
    chains: list[list] = [[]]
    shapes: list[tuple[int, ...]] = []
    for i, layer in enumerate(layers):
        kind = layer_kind(layer)
        if kind == "ReLU":
            shapes.append(shape)
            chains.append([])
            continue
        op = _op(layer, kind, shape, i)
        if op is not None:
            chains[-1].append(op)
            shape = tuple(op.out_shape)
    shapes.append(shape)
    if len(shape) != 1:
        raise VerifierError(f"the model's output has per-example shape {list(shape)}; verifiers "
                            "need logits [N, classes]")
    return Network(chains, tuple(in_shape), shapes)


def n_features(shape) -> int:
    return math.prod(shape)
