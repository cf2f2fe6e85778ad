"""The LLaDA masked-diffusion transformer as a `transformers` model.

Config keys and parameter names follow the official GSAI-ML/LLaDA-8B-Instruct
checkpoint (``model.transformer.blocks.{i}.q_proj.weight`` and so on), so that
checkpoint loads into this class with no missing or unexpected keys and with no
downloaded code. The same class at a tiny size is the bundled model and the one
the tests run.

The network is a LLaMA-style pre-norm transformer (RMSNorm, rotary position
embeddings, SwiGLU) with one difference that makes it a diffusion model: the
attention is bidirectional, with no causal mask.

For block-wise sampling, `forward` can also keep the keys and values of the
positions outside one span of the sequence (`cache_span`). Later passes then
recompute only that span against them (`block_cache`). See `BlockCache`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput


@dataclass
class BlockCache:
    """Keys and values of every position outside one span of a sequence, per layer.

    A forward pass with ``cache_span=(start, end)`` runs the whole sequence of
    length L and fills this cache. Later passes with ``block_cache=cache`` take
    only the span's tokens and attend to the cached keys and values, so they
    cost (end - start) positions instead of L.

    The cache is exact only while the tokens outside the span stay unchanged.
    Because attention is bidirectional, the cached keys and values also depend
    on what the span held when the cache was filled, so later passes are an
    approximation once the span's tokens change.
    """

    start: int
    end: int
    length: int  # L, the full sequence length of the pass that filled the cache
    positions: torch.Tensor  # (B, L) rotary positions of the full sequence
    attention_mask: torch.Tensor | None  # (B, L) bool, True = real token; None = no padding
    # Per layer, (B, n_kv_heads, L - (end - start), head_dim): the positions before the
    # span followed by those after it. Keys are stored after the rotary rotation.
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    def outside(self, tensor: torch.Tensor) -> torch.Tensor:
        """Return the positions of (B, H, L, hd) `tensor` outside the span, in order."""
        return torch.cat([tensor[:, :, :self.start], tensor[:, :, self.end:]], dim=2)

    def around(self, cached: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
        """Put the span's (B, H, end - start, hd) rows back between the cached rows: (B, H, L, hd)."""
        return torch.cat([cached[:, :, :self.start], span, cached[:, :, self.start:]], dim=2)


@dataclass
class LLaDAOutput(MaskedLMOutput):
    """Masked-LM output plus the cache that a pass with `cache_span` fills."""

    block_cache: BlockCache | None = None


class LLaDAConfig(PretrainedConfig):
    """Configuration with the key names of the official LLaDA `config.json`."""

    model_type = "llada"

    def __init__(
        self,
        d_model: int = 4096,
        n_heads: int = 32,
        n_kv_heads: int | None = None,
        n_layers: int = 32,
        mlp_hidden_size: int = 12288,
        vocab_size: int = 126464,
        embedding_size: int | None = None,
        max_sequence_length: int = 4096,
        rope_theta: float = 500000.0,
        rms_norm_eps: float = 1e-5,
        block_type: str = "llama",
        activation_type: str = "silu",
        layer_norm_type: str = "rms",
        rope: bool = True,
        include_bias: bool = False,
        include_qkv_bias: bool = False,
        weight_tying: bool = False,
        mask_token_id: int = 126336,
        eos_token_id: int = 126081,
        pad_token_id: int = 126081,
        init_std: float = 0.02,
        **kwargs,
    ):
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        self.n_layers = n_layers
        self.mlp_hidden_size = mlp_hidden_size
        self.vocab_size = vocab_size
        self.embedding_size = vocab_size if embedding_size is None else embedding_size
        self.max_sequence_length = max_sequence_length
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.block_type = block_type
        self.activation_type = activation_type
        self.layer_norm_type = layer_norm_type
        self.rope = rope
        self.include_bias = include_bias
        self.include_qkv_bias = include_qkv_bias
        self.weight_tying = weight_tying
        self.mask_token_id = mask_token_id
        self.init_std = init_std
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)

    def validate_supported(self) -> None:
        """Raise ValueError for official options this implementation does not cover."""
        expected = {
            "block_type": "llama", "activation_type": "silu", "layer_norm_type": "rms",
            "rope": True, "include_bias": False, "include_qkv_bias": False, "weight_tying": False,
        }
        for key, value in expected.items():
            if getattr(self, key) != value:
                raise ValueError(
                    f"LLaDA config has {key}={getattr(self, key)!r}, but only {key}={value!r} is "
                    "implemented; load this checkpoint with --trust-remote-code instead.")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}.")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.n_kv_heads}.")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32: bf16 squares lose too much precision.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * self.weight.float()).to(x.dtype)


def rotary_tables(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return cos and sin tables of shape (B, 1, L, head_dim) in float32."""
    exponents = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    inv_freq = theta ** -exponents  # (head_dim / 2,)
    angles = positions.float()[..., None] * inv_freq  # (B, L, head_dim / 2)
    angles = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, L, head_dim)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, L, head_dim) by the "rotate half" convention, in float32."""
    x32 = x.float()
    first, second = x32.chunk(2, dim=-1)
    rotated = torch.cat([-second, first], dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype)


class LLaDABlock(nn.Module):
    """One pre-norm transformer block; the attribute names are the checkpoint's."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        d, kv_dim = config.d_model, config.n_kv_heads * config.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.attn_norm = RMSNorm(d, config.rms_norm_eps)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv_dim, bias=False)
        self.v_proj = nn.Linear(d, kv_dim, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_norm = RMSNorm(d, config.rms_norm_eps)
        self.ff_proj = nn.Linear(d, config.mlp_hidden_size, bias=False)  # gate
        self.up_proj = nn.Linear(d, config.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(config.mlp_hidden_size, d, bias=False)  # down

    def _split_heads(self, x: torch.Tensor, n_heads: int) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, n_heads, self.head_dim).transpose(1, 2)  # (B, H, L, hd)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attn_mask: torch.Tensor | None,
                cache: BlockCache | None = None, layer: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the block output (B, L_x, d) and the keys and values of x's own positions.

        With `cache`, x contains only the cache's span, and its queries also attend
        to the cached keys and values of layer `layer`.
        """
        batch, length, d = x.shape
        n = self.attn_norm(x)
        q = apply_rotary(self._split_heads(self.q_proj(n), self.n_heads), cos, sin)  # (B, H, L_x, hd)
        k = apply_rotary(self._split_heads(self.k_proj(n), self.n_kv_heads), cos, sin)  # (B, H_kv, L_x, hd)
        v = self._split_heads(self.v_proj(n), self.n_kv_heads)
        all_k, all_v = k, v
        if cache is not None:
            all_k = cache.around(cache.keys[layer], k)  # (B, H_kv, L, hd)
            all_v = cache.around(cache.values[layer], v)
        if self.n_kv_heads != self.n_heads:  # grouped-query attention: share each kv head
            repeat = self.n_heads // self.n_kv_heads
            all_k, all_v = all_k.repeat_interleave(repeat, dim=1), all_v.repeat_interleave(repeat, dim=1)
        # No causal mask: every query attends to every non-padding key.
        attn = F.scaled_dot_product_attention(q, all_k, all_v, attn_mask=attn_mask, is_causal=False)
        h = x + self.attn_out(attn.transpose(1, 2).reshape(batch, length, d))

        m = self.ff_norm(h)
        return h + self.ff_out(F.silu(self.ff_proj(m)) * self.up_proj(m)), k, v


class LLaDAModel(nn.Module):
    """The trunk; it sits at ``model`` so parameter names read ``model.transformer.*``."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(config.embedding_size, config.d_model),
            "blocks": nn.ModuleList(LLaDABlock(config) for _ in range(config.n_layers)),
            "ln_f": RMSNorm(config.d_model, config.rms_norm_eps),
            "ff_out": nn.Linear(config.d_model, config.embedding_size, bias=False),  # LM head
        })


class LLaDAModelLM(PreTrainedModel):
    """LLaDA with its LM head: ``logits = model(input_ids, attention_mask).logits``."""

    config_class = LLaDAConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LLaDABlock"]
    _supports_sdpa = True

    def __init__(self, config: LLaDAConfig):
        config.validate_supported()
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.gradient_checkpointing = False
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.transformer.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.transformer.wte = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.model.transformer.ff_out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                cache_span: tuple[int, int] | None = None, block_cache: BlockCache | None = None,
                **kwargs) -> LLaDAOutput:
        """Return logits of shape (B, L, embedding_size).

        `attention_mask` (B, L) marks real tokens with 1 and padding with 0.
        Padding keys are hidden from every query, and positions count real
        tokens only, so a left-padded row gets the same rotary angles as the
        same row unpadded. The official model always numbers positions 0..L-1;
        rotary attention depends only on position differences, so both give
        the same attention scores.

        Block cache, for inference (see `BlockCache`):

        * ``cache_span=(start, end)``: a normal full pass that also returns
          ``block_cache`` with the keys and values of every position outside
          ``[start, end)``.
        * ``block_cache=cache``: `input_ids` contains only the span's tokens,
          (B, end - start). The rotary positions and the padding mask come from
          the cache, so leave `attention_mask` unset. The logits cover the span
          only, (B, end - start, embedding_size).
        """
        if kwargs:
            # Generic trainers pass `labels` or `position_ids`; LLaDA's loss needs
            # the masking ratio, which lives in the collator, so reject them loudly.
            raise TypeError(f"LLaDAModelLM.forward got unexpected arguments {sorted(kwargs)}; "
                            "it takes only input_ids, attention_mask, cache_span and block_cache.")
        if block_cache is not None:
            if cache_span is not None:
                raise ValueError("Pass either cache_span (to fill a cache) or block_cache (to use one), not both.")
            return self._forward_span(input_ids, attention_mask, block_cache)

        batch, length = input_ids.shape
        transformer = self.model.transformer
        positions, attn_mask = _positions_and_mask(input_ids, attention_mask)
        cos, sin = rotary_tables(positions, self.config.head_dim, self.config.rope_theta)
        cache = None
        if cache_span is not None:
            start, end = _checked_span(cache_span, length)
            cache = BlockCache(start=start, end=end, length=length, positions=positions,
                               attention_mask=None if attention_mask is None else attention_mask.bool(),
                               keys=[], values=[])

        x = transformer.wte(input_ids)  # (B, L, d_model)
        for block in transformer.blocks:
            if self.gradient_checkpointing and self.training:
                x, keys, values = self._gradient_checkpointing_func(block.__call__, x, cos, sin, attn_mask)
            else:
                x, keys, values = block(x, cos, sin, attn_mask)
            if cache is not None:
                cache.keys.append(cache.outside(keys))  # (B, H_kv, L - span, hd)
                cache.values.append(cache.outside(values))
        logits = transformer.ff_out(transformer.ln_f(x))  # (B, L, embedding_size)
        return LLaDAOutput(logits=logits, block_cache=cache)

    def _forward_span(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      cache: BlockCache) -> LLaDAOutput:
        """Run only the cache's span against the cached keys and values; return the span's logits."""
        span = cache.end - cache.start
        if attention_mask is not None:
            raise ValueError("attention_mask must be unset with block_cache: the cache keeps the mask of "
                             "the pass that filled it.")
        if input_ids.shape != (cache.positions.shape[0], span):
            raise ValueError(f"input_ids has shape {tuple(input_ids.shape)}, but the cache's span needs "
                             f"({cache.positions.shape[0]}, {span}): pass the tokens at positions "
                             f"{cache.start}..{cache.end - 1} only.")
        transformer = self.model.transformer
        positions = cache.positions[:, cache.start:cache.end]  # (B, span), the true absolute positions
        cos, sin = rotary_tables(positions, self.config.head_dim, self.config.rope_theta)
        # Keys are in full-sequence order again inside each block, so the full mask applies as it is.
        attn_mask = None if cache.attention_mask is None else cache.attention_mask[:, None, None, :]

        x = transformer.wte(input_ids)  # (B, span, d_model)
        for layer, block in enumerate(transformer.blocks):
            x, _, _ = block(x, cos, sin, attn_mask, cache, layer)
        logits = transformer.ff_out(transformer.ln_f(x))  # (B, span, embedding_size)
        return LLaDAOutput(logits=logits)


def _positions_and_mask(input_ids: torch.Tensor,
                        attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return rotary positions (B, L) and the SDPA mask (B, 1, 1, L), True = attend, or None."""
    batch, length = input_ids.shape
    if attention_mask is None:
        return torch.arange(length, device=input_ids.device).expand(batch, length), None
    attention_mask = attention_mask.bool()
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return positions, attention_mask[:, None, None, :]


def _checked_span(cache_span: tuple[int, int], length: int) -> tuple[int, int]:
    start, end = (int(bound) for bound in cache_span)
    if not 0 <= start < end <= length:
        raise ValueError(f"cache_span={tuple(cache_span)} is not a non-empty span of a sequence of length "
                         f"{length}; pass (start, end) with 0 <= start < end <= {length}.")
    return start, end


# Let AutoConfig and AutoModel resolve model_type "llada" to these classes without remote code.
AutoConfig.register(LLaDAConfig.model_type, LLaDAConfig, exist_ok=True)
AutoModel.register(LLaDAConfig, LLaDAModelLM, exist_ok=True)
