"""peft's family of parameter-efficient tuners, shared by the ``peft`` strategy (``method = "lora" |
"dora" | "ia3" | "loha" | "lokr" | "oft" | "boft" | "vera" | "hra" | "fourierft"``) and its ``lora``
preset: their options, the adapted model, training, merging and parameter counts.

Each method is one row of :data:`METHODS`: the peft config class it builds, the options a suite
may set with their defaults (peft's config fields of the same name and default, except LoRA's
``alpha`` and ``dropout``, which map onto ``lora_alpha`` and ``lora_dropout``, and LoRA's alpha
of 16), and the values it fixes (DoRA is LoRA with ``use_dora``). The options are declared here,
not generated from peft's dataclasses at import (peft pulls in transformers: seconds on every
``tlbench`` start); the tests check each against peft's dataclass. A suite's values are checked by
building the peft config when the suite is read, so an inconsistent combination (OFT with both
``r`` and ``oft_block_size``) fails before anything trains, in one line. :func:`method_options`
gives one method's options (the ``lora`` strategy is this strategy's preset with
``method_options("lora")``); :class:`PeftOptions`, the ``peft`` strategy's, takes every method's
options, each rejected for a method that does not have it.

The adapted layers default to the backbone's ``lora_targets`` (ViT and BERT attention
projections, ``nn.Linear``; a convnet's pointwise 1x1 ``nn.Conv2d``; the tiny CNN's 3x3
convolutions). Whether a method can wrap them is peft's to say: a method that wraps no layer type
the backbone's targets are (VeRA and FourierFT on a convnet; OFT on k x k convolutions, where
peft 0.21's OFT does not reproduce the layer) raises
:class:`tlbench.contract.errors.NotApplicable` with peft's reason, and the cell is recorded as *skipped*
with it, not failed: the planner cannot know a backbone's layers without building it.

After training, the model is merged (peft's ``merge_and_unload``, :func:`merged`) where the
method supports it, and the merged model is what is evaluated: the deployable model, with the
inference cost of the plain backbone; otherwise the adapted model is. ``trainable_params`` counts
the adapters and the head; ``total_params`` the frozen backbone, the adapters and the head.
Batch-norm layers (all frozen here) keep their pretrained running statistics by default, so that
a merged model is exactly "pretrained weights + the method's delta".

:func:`default_lora_targets` is how a backbone names those targets by what it is made of. Importing
this module imports neither torch nor peft (a strategy names its options at import): the functions
import them when called.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator

from tlbench.contract.errors import NotApplicable, UserError
from tlbench.contract.space import LogUniform
from tlbench.contract.values import Options, Outcome
from tlbench.train.strategies import BN_STATS_HELP, count_params

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

#: Adapters train small deltas (most start at zero) and a fresh head: they need a learning rate
#: several times that of full fine-tuning (peft's ViT image-classification recipe uses 5e-3 with
#: AdamW; 3e-4 barely moves LoRA's adapters in a short run). Centred on 3e-3.
GRID = {"lr": [1e-3, 3e-3, 1e-2]}
SPACE = {"lr": LogUniform(1e-4, 3e-2), "weight_decay": LogUniform(1e-4, 0.3)}


@dataclass(frozen=True)
class Method:
    """One peft tuner: ``config``, the name of its peft config class; ``options``, the suite's
    option names with their defaults (peft's, except LoRA's ``alpha``); ``fields``, the config
    field an option sets where its name differs; ``fixed``, config values the method always sets;
    ``pointwise_convs_only``: the method is exact on nn.Linear and 1x1 nn.Conv2d only;
    ``contiguous_weights``: its convolution layers ``view`` the base weight as out × (in·k·k), which
    the channels-last layout of :func:`tlbench.train.engine.place` does not allow, so the model is laid
    out contiguous before wrapping."""

    name: str
    config: str
    help: str
    options: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    pointwise_convs_only: bool = False
    contiguous_weights: bool = False

    def config_class(self):
        import peft  # imported here: peft pulls in transformers, slow to import for other strategies
        return getattr(peft, self.config)

    def config_kwargs(self, values: dict[str, Any]) -> dict[str, Any]:
        """peft config keyword arguments from option values (fixed values included)."""
        return {**self.fixed, **{self.fields.get(k, k): v for k, v in values.items()}}


@dataclass(frozen=True)
class Option:
    """An option's type, help text and bounds (its default is per method)."""

    kind: type
    help: str
    bounds: dict[str, Any] = field(default_factory=dict)


_P = dict(ge=0, lt=1)  # a probability
#: Every method option: peft's config field of that name (``alpha`` and ``dropout`` of LoRA map
#: onto ``lora_alpha`` and ``lora_dropout``); the tests check each against peft's dataclass.
OPTIONS: dict[str, Option] = {
    "r": Option(int, "rank of the update (OFT: number of blocks per layer, in place of oft_block_size = 0)",
                dict(ge=1, le=4096)),
    "alpha": Option(float, "scaling numerator: the update is scaled by alpha / r", dict(gt=0)),
    "dropout": Option(float, "dropout on the input of each LoRA branch", _P),
    "rank_dropout": Option(float, "dropout probability on the rank dimension while training", _P),
    "module_dropout": Option(float, "probability of disabling a layer's adapter for a step while training", _P),
    "use_effective_conv2d": Option(bool, "decompose Conv2d kernels larger than 1x1 parameter-efficiently "
                                         "(FedPara, Proposition 3)"),
    "decompose_both": Option(bool, "also decompose the left factor of the Kronecker product into low rank"),
    "decompose_factor": Option(int, "factor of the Kronecker decomposition (-1: as square as possible)"),
    "oft_block_size": Option(int, "size of each orthogonal block (0 to size them by r)", dict(ge=0)),
    "coft": Option(bool, "constrained OFT: keep the rotation within eps of the identity"),
    "eps": Option(float, "freedom of rotation of constrained OFT (coft)", dict(gt=0)),
    "block_share": Option(bool, "share one orthogonal block across the blocks of a layer"),
    "boft_block_size": Option(int, "size of each butterfly block (0 to size them by boft_block_num)", dict(ge=0)),
    "boft_block_num": Option(int, "number of butterfly blocks per layer (0 to size them by boft_block_size)",
                             dict(ge=0)),
    "boft_n_butterfly_factor": Option(int, "number of butterfly factors", dict(ge=1)),
    "boft_dropout": Option(float, "probability of setting a butterfly block to the identity while training", _P),
    "vera_dropout": Option(float, "dropout on the input of each VeRA branch", _P),
    "d_initial": Option(float, "initial value of the trained scaling vector d"),
    "apply_GS": Option(bool, "orthogonalise the Householder vectors (Gram-Schmidt)"),
    "n_frequency": Option(int, "number of trained spectral coefficients per layer", dict(ge=1)),
    "scaling": Option(float, "scale of the spectral weight update (as LoRA's alpha)", dict(gt=0)),
}

_LORA = {"r": 8, "alpha": 16.0, "dropout": 0.0}
_LORA_FIELDS = {"alpha": "lora_alpha", "dropout": "lora_dropout"}
_LYCORIS = {"r": 8, "alpha": 8.0, "rank_dropout": 0.0, "module_dropout": 0.0, "use_effective_conv2d": False}

METHODS: dict[str, Method] = {m.name: m for m in [
    Method("lora", "LoraConfig", "low-rank update (alpha / r) B A (Hu et al. 2021)", _LORA, _LORA_FIELDS),
    Method("dora", "LoraConfig", "weight-decomposed LoRA: a trained magnitude and a LoRA direction (Liu et al. 2024)",
           _LORA, _LORA_FIELDS, fixed={"use_dora": True}),
    Method("ia3", "IA3Config", "trained rescaling vectors of the adapted layers' outputs (Liu et al. 2022)",
           fixed={"feedforward_modules": []}),
    Method("loha", "LoHaConfig", "low-rank Hadamard product update (Hyeon-Woo et al. 2022; LyCORIS)", _LYCORIS),
    Method("lokr", "LoKrConfig", "low-rank Kronecker product update (LyCORIS)",
           {**_LYCORIS, "decompose_both": False, "decompose_factor": -1}),
    Method("oft", "OFTConfig", "orthogonal fine-tuning: block-diagonal rotations of the weights (Qiu et al. 2023)",
           {"r": 0, "oft_block_size": 32, "module_dropout": 0.0, "coft": False, "eps": 6e-5, "block_share": False},
           # peft 0.21 rotates a k x k convolution's unfolded input patches and folds them back, which
           # sums overlapping patches: even at its identity initialisation the layer's output changes
           # (measured on a 3x3 convolution); on 1x1 convolutions and linear layers it is exact
           pointwise_convs_only=True),
    Method("boft", "BOFTConfig", "orthogonal fine-tuning with butterfly factorisation (Liu et al. 2024)",
           {"boft_block_size": 4, "boft_block_num": 0, "boft_n_butterfly_factor": 1, "boft_dropout": 0.0},
           contiguous_weights=True),
    Method("vera", "VeraConfig", "frozen shared random projections, trained scaling vectors (Kopiczko et al. 2024)",
           {"r": 256, "vera_dropout": 0.0, "d_initial": 0.1}),
    Method("hra", "HRAConfig", "Householder reflection adaptation (Yuan et al. 2024)", {"r": 8, "apply_GS": False},
           contiguous_weights=True),
    Method("fourierft", "FourierFTConfig", "trained spectral coefficients of the weight update (Gao et al. 2024)",
           {"n_frequency": 1000, "scaling": 150.0}),
]}


class AdapterOptions(Options):
    """What every peft method takes besides its own options."""

    target_modules: list[str] | None = Field(
        None, description="backbone module names to adapt (exact names, or suffixes such as \"qkv\"); default: "
                          "the backbone's lora_targets (ViT/BERT attention projections, convnet 1x1 convolutions)")
    lr: float = Field(3e-3, gt=0, description="peak AdamW learning rate of adapters and head (warm-up, then cosine)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay of adapters and head")
    bn_stats: Literal["frozen", "update"] = Field("frozen", description=BN_STATS_HELP)

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, names):
        if names is not None and (not names or not all(n.strip() for n in names)):
            raise ValueError("give at least one non-empty module name, or leave target_modules out")
        return names


def check_config(method: Method, values: dict[str, Any]) -> None:
    """Build the method's peft config from ``values`` (option name -> value) as the run will,
    with a placeholder target: peft's own checks, when the suite is read."""
    try:
        method.config_class()(target_modules=["placeholder"], **method.config_kwargs(values))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"peft {method.config} rejects these options: {' '.join(str(exc).split())[:240]}") from None


def method_options(name: str) -> type[Options]:
    """The options of one method: :class:`AdapterOptions` and the method's own, with their
    defaults; a suite's values pass peft's checks when it is read."""
    method = METHODS[name]
    fields = {option: (OPTIONS[option].kind, Field(default, description=OPTIONS[option].help,
                                                   **OPTIONS[option].bounds))
              for option, default in method.options.items()}

    def _peft_checks(self):
        check_config(method, own_values(self))
        return self

    model = create_model(f"{name.capitalize()}Options", __base__=AdapterOptions,
                         __validators__={"_peft_checks": model_validator(mode="after")(_peft_checks)}, **fields)
    model.method = name  # the preset's method (a class attribute, not an option)
    return model


def _peft_options_model() -> type[Options]:
    """``method`` and every method's options, each ``T | None`` (None: the method's default) with
    a help text that names the methods taking it and their defaults."""
    names = tuple(METHODS)
    fields = {}
    for option, spec in OPTIONS.items():
        defaults = ", ".join(f"{m.name} {m.options[option]!r}" for m in METHODS.values() if option in m.options)
        fields[option] = (spec.kind | None, Field(None, description=f"{spec.help} (default: {defaults})",
                                                  **spec.bounds))

    def _method_takes_it(cls, value, info: ValidationInfo):
        method = METHODS.get(info.data.get("method"))
        if method is not None and value is not None and info.field_name not in method.options:
            takes = ", ".join(method.options) or "none besides target_modules, lr, weight_decay, bn_stats"
            raise ValueError(f"method {method.name!r} has no option {info.field_name!r}; its options: {takes}")
        return value

    def _peft_checks(self):
        check_config(METHODS[self.method], own_values(self))
        return self

    return create_model(
        "PeftOptions", __base__=AdapterOptions,
        __validators__={"_method_takes_it": field_validator(*fields)(classmethod(_method_takes_it)),
                        "_peft_checks": model_validator(mode="after")(_peft_checks)},
        method=(Literal[names], Field("lora", description=f"the peft tuner: {', '.join(names)}")),
        **fields)


def own_values(options) -> dict[str, Any]:
    """The method's own option values: those ``options`` sets, else the method's defaults."""
    method = METHODS[options.method]
    return {k: v if (v := getattr(options, k, None)) is not None else default
            for k, default in method.options.items()}


PeftOptions = _peft_options_model()


# ---------------------------------------------------------------------------------------------
# targets, the model, training, merging


def default_lora_targets(model: nn.Module, prefix: str = "") -> list[str]:
    """Module names for peft's ``target_modules``, chosen by what the model is made of.

    * transformers: the ``nn.Linear`` layers inside attention modules (ViT ``qkv`` and ``proj``);
    * convnets: pointwise ``Conv2d`` (1×1, ``groups == 1``) -- peft cannot merge LoRA into
      grouped or depthwise convolutions;
    * otherwise (e.g. MLP-Mixer): every ``nn.Linear`` except the classifier.
    """
    from torch import nn

    classifier = classifier_names(model)
    named = [(n, m) for n, m in model.named_modules()
             if n and not any(n == c or n.startswith(c + ".") for c in classifier)]
    attention = [n for n, m in named if "attention" in type(m).__name__.lower()
                 or n.rsplit(".", 1)[-1] in ("attn", "attention", "self_attn")]
    attn_linear = [n for n, m in named if isinstance(m, nn.Linear)
                   and any(n.startswith(a + ".") for a in attention)]
    pointwise = [n for n, m in named if isinstance(m, nn.Conv2d) and m.groups == 1
                 and tuple(m.kernel_size) == (1, 1)]
    linear = [n for n, m in named if isinstance(m, nn.Linear)]
    targets = attn_linear or pointwise or linear
    return [prefix + n for n in targets]


def classifier_names(model: nn.Module) -> tuple[str, ...]:
    """The names of a timm model's classifier modules (its ``pretrained_cfg``); none for other models."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def resolve_targets(backbone: nn.Module, wanted, who: str = "peft") -> list[str]:
    """Backbone module names that ``wanted`` designates.

    ``wanted`` is a list of names, each an exact module name or a suffix after a dot (peft's
    rule); the string ``"all-linear"`` (every ``nn.Linear``); or another string, a regular
    expression matched in full against the names.
    """
    from torch import nn

    named = [(n, m) for n, m in backbone.named_modules() if n]
    if wanted == "all-linear":
        found = [n for n, m in named if isinstance(m, nn.Linear)]
        if not found:
            raise UserError(f"{who}: the backbone {type(backbone).__name__} has no nn.Linear layer to adapt; "
                            "set target_modules")
        return found
    if isinstance(wanted, str):
        found = [n for n, _ in named if re.fullmatch(wanted, n)]
        if not found:
            raise UserError(f"{who}: the pattern {wanted!r} matches no module of the backbone; set target_modules")
        return found
    found: list[str] = []
    for target in wanted:
        hits = [n for n, _ in named if n == target or n.endswith("." + target)]
        if not hits:
            close = [n for n, _ in named if target.split(".")[-1] in n.split(".")][:3]
            hint = f" (modules like it: {', '.join(close)})" if close else ""
            raise UserError(f"{who}: target_modules entry {target!r} names no module of the backbone "
                            f"{type(backbone).__name__}{hint}")
        found += [h for h in hits if h not in found]
    return found


def build_model(ctx, options) -> nn.Module:
    """A pretrained classifier wrapped by peft with ``options``' method: the adapters and the head
    trainable, the rest frozen. Raises :class:`NotApplicable` when peft cannot wrap the targets."""
    import peft
    import torch
    from torch import nn

    name = options.method
    method = METHODS[name]
    classifier = ctx.classifier(pretrained=True)
    if method.contiguous_weights:
        classifier = classifier.to(memory_format=torch.contiguous_format)
    wanted = options.target_modules if options.target_modules is not None else classifier.backbone.lora_targets
    targets = ["backbone." + n for n in resolve_targets(classifier.backbone, wanted, name)]
    modules = dict(classifier.named_modules())
    if method.pointwise_convs_only:
        wide = [n for n in targets if isinstance(modules[n], nn.Conv2d) and tuple(modules[n].kernel_size) != (1, 1)]
        if wide:
            raise NotApplicable(f"{name} cannot adapt the Conv2d layers of backbone {type(classifier.backbone).__name__}: "
                                f"peft's {method.config} is exact on 1x1 convolutions only, and "
                                f"{wide[0].removeprefix('backbone.')} is {tuple(modules[wide[0]].kernel_size)}")
    config = method.config_class()(target_modules=targets, **method.config_kwargs(own_values(options)))
    try:
        model = peft.get_peft_model(classifier, config)
    except (ValueError, TypeError, NotImplementedError) as exc:  # a layer type or shape the method cannot wrap
        layers = sorted({type(modules[n]).__name__ for n in targets})
        raise NotApplicable(f"{name} cannot adapt the {', '.join(layers)} layers of backbone "
                            f"{type(classifier.backbone).__name__}: {' '.join(str(exc).split())[:300]}") from None
    classifier.head.requires_grad_(True)  # the new head trains in full (peft froze it)
    return model


def fit(ctx, model: nn.Module, options) -> None:
    """Train the adapters and the head; frozen batch-norm layers keep their statistics unless
    ``bn_stats = "update"``."""
    from tlbench.train.norms import FrozenNormStats, batch_norms

    if options.bn_stats == "frozen":
        model = FrozenNormStats(model, batch_norms(model))
    ctx.fit(model, options.lr, options.weight_decay)


def merged(model: nn.Module) -> nn.Module | None:
    """The deployable model: a copy of ``model`` with its adapters merged into the base weights
    (peft's ``merge_and_unload``), the peft wrappers gone; None when the method cannot merge into
    these layers (``model`` is left as it is either way)."""
    try:
        return copy.deepcopy(model).merge_and_unload()
    except (ValueError, TypeError, NotImplementedError, RuntimeError, AttributeError):
        return None


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a separate adapter file holds: peft's adapter state (VeRA's shared projections
    included) and the new head."""
    from peft import get_peft_model_state_dict

    head = model.base_model.model.head
    return {**get_peft_model_state_dict(model), **{f"head.{n}": p for n, p in head.named_parameters()}}


def run(ctx, options) -> Outcome:
    """Train, then evaluate the merged model where the method merges (else the adapted one); the
    deployed model and the adapter go to ``ctx.predict``, which measures their size."""
    model = build_model(ctx, options)
    trainable, total = count_params(model)
    fit(ctx, model, options)
    adapter = adapter_tensors(model)
    deployable = merged(model)
    logits = ctx.predict(deployable if deployable is not None else model, adapter=adapter)
    return Outcome(logits, trainable, total, extra={"merged": float(deployable is not None)})
