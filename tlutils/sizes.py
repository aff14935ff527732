"""How big are "large models"? Parameter counts computed, not quoted (chapter 01, "How large
is "large"? Counting parameters").

Three independent ways to count the parameters of a Transformer, which must agree:

* :func:`transformer_params`: a closed-form count from the published configuration
  (vocabulary, layers, width, ...), written out term by term in chapter 01;
* :func:`count_params` on the real ``keras_hub`` architecture built from that configuration
  (:func:`build_backbone`). ``allocate=False`` builds it *shape-only* (:func:`shape_only`):
  every layer and weight exists with its shape but no memory is allocated, so even GPT-3's
  175 billion parameters can be counted on a laptop;
* :func:`published_params`: the count ``keras_hub`` publishes for its pretrained presets.

Plus the arithmetic of the cost argument: :func:`memory_bytes` and :func:`training_flops`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import keras
import numpy as np

from tlutils import checks

__all__ = [
    "ARTICLE_CLAIMS",
    "CONFIGS",
    "PAPER_COUNTS",
    "TransformerConfig",
    "build_backbone",
    "count_params",
    "memory_bytes",
    "param_breakdown",
    "published_params",
    "shape_only",
    "training_flops",
    "transformer_params",
]

_FAMILIES = ("bert", "roberta", "gpt2")


@dataclass(frozen=True)
class TransformerConfig:
    """A Transformer's published configuration, in ``keras_hub``'s argument names
    (chapter 01).

    ``family`` picks the backbone class: ``"bert"`` (token, position and segment embeddings,
    embedding LayerNorm, post-norm blocks, a pooler), ``"roberta"`` (BERT without segments or
    pooler) or ``"gpt2"`` (pre-norm blocks, a final LayerNorm, the output layer tied to the
    token embedding). ``preset`` names the matching ``keras_hub`` preset, if there is one.
    """

    name: str
    family: str
    vocabulary_size: int
    num_layers: int
    num_heads: int
    hidden_dim: int
    intermediate_dim: int
    max_sequence_length: int
    preset: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        checks.one_of("family", self.family, _FAMILIES)
        for field in ("vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                      "intermediate_dim", "max_sequence_length"):
            checks.int_at_least(field, getattr(self, field))
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must be divisible by num_heads "
                             f"({self.num_heads})")

    @property
    def num_segments(self) -> int:
        """Segment (token-type) vocabulary: 2 for BERT, none for RoBERTa and GPT-2."""
        return 2 if self.family == "bert" else 0


def _cfg(name: str, family: str, vocab: int, layers: int, heads: int, hidden: int, inter: int,
         seq: int, preset: str | None = None) -> TransformerConfig:
    return TransformerConfig(name, family, vocab, layers, heads, hidden, inter, seq, preset)


#: Published configurations (the papers and the released checkpoints' config files).
#: GPT-3 175B: 96 layers, d_model 12,288, 96 heads, context 2,048, GPT-2's 50,257-token BPE
#: vocabulary (Brown et al. 2020, table 2.1); its sparse attention layers add no parameters.
CONFIGS: dict[str, TransformerConfig] = {c.name: c for c in (
    _cfg("BERT-tiny", "bert", 30522, 2, 2, 128, 512, 512, "bert_tiny_en_uncased"),
    _cfg("BERT-base", "bert", 30522, 12, 12, 768, 3072, 512, "bert_base_en_uncased"),
    _cfg("BERT-large", "bert", 30522, 24, 16, 1024, 4096, 512, "bert_large_en_uncased"),
    _cfg("RoBERTa-base", "roberta", 50265, 12, 12, 768, 3072, 512, "roberta_base_en"),
    _cfg("RoBERTa-large", "roberta", 50265, 24, 16, 1024, 4096, 512, "roberta_large_en"),
    _cfg("GPT-2 small", "gpt2", 50257, 12, 12, 768, 3072, 1024, "gpt2_base_en"),
    _cfg("GPT-2 medium", "gpt2", 50257, 24, 16, 1024, 4096, 1024, "gpt2_medium_en"),
    _cfg("GPT-2 large", "gpt2", 50257, 36, 20, 1280, 5120, 1024, "gpt2_large_en"),
    _cfg("GPT-2 XL", "gpt2", 50257, 48, 25, 1600, 6400, 1024, "gpt2_extra_large_en"),
    _cfg("GPT-3 175B", "gpt2", 50257, 96, 96, 12288, 49152, 2048),
)}

#: What the papers themselves report (BERT: Devlin et al. 2019; RoBERTa: Liu et al. 2019,
#: "BERT-large ... 355M"; GPT-2: Radford et al. 2019, table 2, which undercounts the released
#: checkpoints; GPT-3: Brown et al. 2020, table 2.1).
PAPER_COUNTS: dict[str, float] = {
    "BERT-base": 110e6, "BERT-large": 340e6, "RoBERTa-large": 355e6,
    "GPT-2 small": 117e6, "GPT-2 medium": 345e6, "GPT-2 large": 762e6, "GPT-2 XL": 1542e6,
    "GPT-3 175B": 175e9,
}

#: The source article's figures: "175亿", "110亿", "176亿" (1 亿 = 10^8), i.e. 17.5, 11 and
#: 17.6 billion, attached to the families GPT, BERT and RoBERTa.
ARTICLE_CLAIMS: dict[str, float] = {"GPT": 175e8, "BERT": 110e8, "RoBERTa": 176e8}


def param_breakdown(config: TransformerConfig) -> dict[str, int]:
    """The closed-form parameter count of ``config``, term by term (chapter 01, "A formula for
    Transformer encoders and decoders").

    With vocabulary :math:`V`, positions :math:`P`, segments :math:`S`, width :math:`d`,
    feed-forward width :math:`d_{ff}` and :math:`L` layers:

    * embeddings: :math:`(V + P + S)\\,d`, plus :math:`2d` for BERT/RoBERTa's embedding
      LayerNorm;
    * each block: attention :math:`4(d^2 + d)` (query, key, value, output projections with
      biases), feed-forward :math:`2\\,d\\,d_{ff} + d_{ff} + d`, two LayerNorms :math:`4d`;
    * BERT's pooler :math:`d^2 + d`; GPT-2's final LayerNorm :math:`2d`. GPT-2's output
      layer reuses the token embedding (tied weights), so it adds nothing.

    The number of heads does not enter: it splits :math:`d`, it does not add weights.
    """
    return _breakdown(checks.instance("config", config, TransformerConfig))


def _breakdown(c: TransformerConfig) -> dict[str, int]:
    d, f = c.hidden_dim, c.intermediate_dim
    parts = {
        "token embedding": c.vocabulary_size * d,
        "position embedding": c.max_sequence_length * d,
        "segment embedding": c.num_segments * d,
        "embedding LayerNorm": 2 * d if c.family in ("bert", "roberta") else 0,
        "attention (all layers)": c.num_layers * 4 * (d * d + d),
        "feed-forward (all layers)": c.num_layers * (2 * d * f + f + d),
        "block LayerNorms (all layers)": c.num_layers * 4 * d,
        "pooler": d * d + d if c.family == "bert" else 0,
        "final LayerNorm": 2 * d if c.family == "gpt2" else 0,
    }
    return parts


def transformer_params(config: TransformerConfig) -> int:
    """Total parameters of ``config`` from the closed form of :func:`param_breakdown`
    (chapter 01, "A formula for Transformer encoders and decoders"). Matches ``keras_hub``'s
    backbones exactly."""
    return int(sum(param_breakdown(config).values()))


def shape_only(builder: Callable[[], object]) -> keras.Model:
    """``builder()``'s model, built without allocating its weights (chapter 01, "The large
    models, built shape-only": counting GPT-3 on a laptop).

    ``builder`` is called inside Keras's deferred variable creation
    (``keras.StatelessScope(initialize_variables=False)``): every weight gets its shape and
    initializer but no value, so the model can be counted and summarised, never run. Keras
    keeps such deferred weights on a to-do list and allocates them when a later stateless
    scope closes (building a functional model with a custom layer does), which for GPT-3
    would mean 700 GB. That list is per thread, so the build runs on a short-lived worker
    thread and the list dies with it: nothing is ever allocated, nothing is left pending.
    Raises ValueError unless ``builder`` returns a ``keras.Model``.
    """
    if not callable(builder):
        raise ValueError(f"builder must be a zero-argument callable, got {type(builder).__name__}")
    return checks.model(_deferred(builder), "builder()")


def _deferred(builder: Callable[[], object]) -> object:
    def build() -> object:
        with keras.StatelessScope(initialize_variables=False):
            return builder()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tlutils-shape-only") as pool:
        return pool.submit(build).result()


def _backbone_builder(c: TransformerConfig) -> Callable[[], keras.Model]:
    import keras_hub  # optional: the "text" extra

    cls = {"bert": keras_hub.models.BertBackbone, "roberta": keras_hub.models.RobertaBackbone,
           "gpt2": keras_hub.models.GPT2Backbone}[c.family]

    def build() -> keras.Model:
        return cls(vocabulary_size=c.vocabulary_size, num_layers=c.num_layers,
                   num_heads=c.num_heads, hidden_dim=c.hidden_dim,
                   intermediate_dim=c.intermediate_dim,
                   max_sequence_length=c.max_sequence_length)

    return build


def build_backbone(config: TransformerConfig, *, allocate: bool = True) -> keras.Model:
    """The ``keras_hub`` backbone of ``config``, with random weights and no download
    (chapter 01, "Checking the formula against models we can build"). ``allocate=False``
    builds it with :func:`shape_only`: countable, not runnable, and quick even for GPT-3."""
    checks.instance("config", config, TransformerConfig)
    if not isinstance(allocate, bool):
        raise ValueError(f"allocate must be a bool, got {allocate!r}")
    build = _backbone_builder(config)
    return build() if allocate else _deferred(build)


def count_params(model_or_builder: keras.Model | Callable[[], keras.Model]) -> int:
    """Number of parameters (trainable and not) of a Keras model, read from weight shapes
    (chapter 01, "How large is "large"? Counting parameters"). Also accepts a zero-argument
    builder, e.g. ``lambda: keras.applications.ResNet50(weights=None)``, which is then built
    with :func:`shape_only`, so nothing is allocated."""
    if isinstance(model_or_builder, keras.Model):
        model = model_or_builder
    elif callable(model_or_builder):
        model = _deferred(model_or_builder)
        if not isinstance(model, keras.Model):
            raise ValueError(f"model_or_builder returned {type(model).__name__}, "
                             "not a keras.Model")
    else:
        raise ValueError("model_or_builder must be a keras.Model or a zero-argument builder, "
                         f"got {type(model_or_builder).__name__}")
    return int(sum(int(np.prod(w.shape)) for w in model.weights))


def published_params(preset: str) -> int:
    """The parameter count ``keras_hub`` publishes for a pretrained preset such as
    ``"bert_base_en_uncased"`` (chapter 01, "The large models, built shape-only").
    Read from the installed package's metadata; no download."""
    if not isinstance(preset, str) or not preset:
        raise ValueError(f"preset must be a non-empty string, got {preset!r}")
    import keras_hub  # optional: the "text" extra

    for cls in (keras_hub.models.BertBackbone, keras_hub.models.RobertaBackbone,
                keras_hub.models.GPT2Backbone):
        if preset in cls.presets:
            return int(cls.presets[preset]["metadata"]["params"])
    raise ValueError(f"preset {preset!r} is not a BERT, RoBERTa or GPT-2 preset of keras_hub")


def memory_bytes(n_params: int | float, *, bytes_per_param: int = 4,
                 training: bool = False) -> float:
    """Bytes needed to hold ``n_params`` weights (chapter 01, "The cost argument, made
    concrete").

    ``training=True`` adds a gradient and Adam's two moment estimates per weight, i.e. four
    copies in all (activations not included): the *minimum* for training with Adam.
    """
    n = checks.number("n_params", n_params, low=0.0)
    width = checks.int_at_least("bytes_per_param", bytes_per_param)
    return n * width * (4 if training else 1)


def training_flops(n_params: int | float, n_tokens: int | float) -> float:
    """Approximate training compute of a dense Transformer: :math:`C \\approx 6ND`
    floating-point operations for :math:`N` parameters and :math:`D` training tokens
    (2 per weight per token forward, 4 backward; Kaplan et al. 2020). Chapter 01, "The cost
    argument, made concrete"."""
    return (6.0 * checks.number("n_params", n_params, low=0.0)
            * checks.number("n_tokens", n_tokens, low=0.0))
