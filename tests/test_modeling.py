import json

import pytest
import torch
from safetensors import safe_open

from llada_cot.modeling_llada import LLaDAConfig, LLaDAModelLM, apply_rotary, rotary_tables

from conftest import random_model

# Parameter names and shapes of GSAI-ML/LLaDA-8B-Instruct's safetensors shards.
D_MODEL, MLP, VOCAB, LAYERS = 4096, 12288, 126464, 32
OFFICIAL_BLOCK_SHAPES = {
    "attn_norm.weight": (D_MODEL,),
    "q_proj.weight": (D_MODEL, D_MODEL),
    "k_proj.weight": (D_MODEL, D_MODEL),
    "v_proj.weight": (D_MODEL, D_MODEL),
    "attn_out.weight": (D_MODEL, D_MODEL),
    "ff_norm.weight": (D_MODEL,),
    "ff_proj.weight": (MLP, D_MODEL),
    "up_proj.weight": (MLP, D_MODEL),
    "ff_out.weight": (D_MODEL, MLP),
}
OFFICIAL_CONFIG = {
    "d_model": D_MODEL, "n_layers": LAYERS, "n_heads": 32, "n_kv_heads": 32, "mlp_hidden_size": MLP,
    "vocab_size": VOCAB, "embedding_size": VOCAB, "block_type": "llama", "activation_type": "silu",
    "layer_norm_type": "rms", "rms_norm_eps": 1e-5, "rope": True, "rope_theta": 500000.0,
    "include_bias": False, "include_qkv_bias": False, "weight_tying": False,
    "max_sequence_length": 4096, "mask_token_id": 126336, "eos_token_id": 126081,
}


def official_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {
        "model.transformer.wte.weight": (VOCAB, D_MODEL),
        "model.transformer.ln_f.weight": (D_MODEL,),
        "model.transformer.ff_out.weight": (VOCAB, D_MODEL),
    }
    for i in range(LAYERS):
        for name, shape in OFFICIAL_BLOCK_SHAPES.items():
            shapes[f"model.transformer.blocks.{i}.{name}"] = shape
    return shapes


def test_8b_config_gives_official_parameter_names_and_shapes():
    config = LLaDAConfig(**OFFICIAL_CONFIG)
    with torch.device("meta"):
        model = LLaDAModelLM(config)
    shapes = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    assert shapes == official_shapes()


def test_save_pretrained_writes_official_key_names(tokenizer, tmp_path):
    model = random_model(tokenizer, n_layers=2)
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as shard:
        keys = set(shard.keys())
    expected = {"model.transformer.wte.weight", "model.transformer.ln_f.weight", "model.transformer.ff_out.weight"}
    expected |= {f"model.transformer.blocks.{i}.{name}" for i in range(2) for name in OFFICIAL_BLOCK_SHAPES}
    assert keys == expected
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llada"
    for key in ("d_model", "n_layers", "n_heads", "n_kv_heads", "mlp_hidden_size", "embedding_size",
                "rope_theta", "mask_token_id", "eos_token_id", "weight_tying"):
        assert key in config, key


def test_official_config_file_loads_without_remote_code(tmp_path):
    # The official config.json carries an auto_map for remote code; this class ignores it.
    payload = {**OFFICIAL_CONFIG, "model_type": "llada", "architectures": ["LLaDAModelLM"],
               "auto_map": {"AutoModel": "modeling_llada.LLaDAModelLM"}}
    (tmp_path / "config.json").write_text(json.dumps(payload))
    config = LLaDAConfig.from_pretrained(tmp_path)
    assert config.d_model == D_MODEL
    assert config.mask_token_id == 126336
    assert config.head_dim == 128


def test_forward_returns_logits_of_embedding_size(tokenizer):
    model = random_model(tokenizer)
    logits = model(torch.randint(0, len(tokenizer), (3, 11))).logits
    assert logits.shape == (3, 11, len(tokenizer))


def test_attention_is_bidirectional(tokenizer):
    model = random_model(tokenizer)
    ids = torch.randint(0, len(tokenizer), (1, 8))
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % len(tokenizer)
    # Changing the last token changes the first position's logits: no causal mask.
    assert not torch.allclose(model(ids).logits[0, 0], model(changed).logits[0, 0])


def test_attention_mask_hides_left_padding(tokenizer):
    model = random_model(tokenizer)
    ids = torch.randint(5, len(tokenizer), (1, 7))
    padded = torch.cat([torch.full((1, 3), tokenizer.pad_token_id), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 3), torch.ones(1, 7)], dim=1).long()
    alone = model(ids).logits[0]
    with_mask = model(padded, attention_mask=mask).logits[0, 3:]
    without_mask = model(padded).logits[0, 3:]
    torch.testing.assert_close(with_mask, alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(without_mask, alone, atol=1e-3)


def test_save_and_load_round_trip_gives_same_logits(tokenizer, tmp_path):
    model = random_model(tokenizer)
    model.save_pretrained(tmp_path)
    reloaded = LLaDAModelLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, len(tokenizer), (2, 9))
    torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)


def test_grouped_query_attention_runs(tokenizer):
    model = random_model(tokenizer, n_heads=4, n_kv_heads=2)
    assert model.model.transformer.blocks[0].k_proj.weight.shape == (16, 32)
    assert model(torch.randint(0, len(tokenizer), (1, 5))).logits.shape == (1, 5, len(tokenizer))


@pytest.mark.parametrize("argument", ["labels", "position_ids"])
def test_forward_rejects_arguments_llada_does_not_take(tokenizer, argument):
    model = random_model(tokenizer)
    ids = torch.randint(0, len(tokenizer), (1, 4))
    with pytest.raises(TypeError, match=argument):
        model(ids, **{argument: ids})


def test_unsupported_official_option_is_rejected():
    with pytest.raises(ValueError, match="weight_tying"):
        LLaDAModelLM(LLaDAConfig(d_model=8, n_heads=2, n_layers=1, mlp_hidden_size=8, vocab_size=16,
                                 weight_tying=True))


def test_rotary_pairs_first_and_second_half():
    head_dim, theta = 4, 10000.0
    cos, sin = rotary_tables(torch.tensor([[3]]), head_dim, theta)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, head_dim)
    rotated = apply_rotary(x, cos, sin).flatten()
    # Dimension j pairs with j + head_dim / 2 and turns by position * theta^(-2j / head_dim).
    angles = [3 * theta ** (-0 / head_dim), 3 * theta ** (-2 / head_dim)]
    expected = []
    for j, angle in enumerate(angles):
        a, b = x.flatten()[j].item(), x.flatten()[j + 2].item()
        expected.append((j, a * torch.cos(torch.tensor(angle)) - b * torch.sin(torch.tensor(angle))))
        expected.append((j + 2, b * torch.cos(torch.tensor(angle)) + a * torch.sin(torch.tensor(angle))))
    for index, value in expected:
        assert rotated[index].item() == pytest.approx(value.item(), abs=1e-5)
