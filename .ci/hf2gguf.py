"""Convert a small Hugging Face BLOOM checkpoint (config.json, tokenizer.json, model.safetensors) to GGUF f32,
the way llama.cpp's convert_hf_to_gguf.py does for BLOOM (QKV regrouped from per-head [q,k,v] to [all q; all k; all v]).
usage: python hf2gguf.py MODEL_DIR OUT.gguf

The converter that made ../shared/models/tiny-bloom-gsm8k-gguf, kept here so CI makes the same GGUF from the
embedded model (assets/models/tiny-bloom-gsm8k) wherever the checkout lies, ../shared beside it or not. It reads the
safetensors file with numpy alone (the format: an 8-byte little-endian header length, a JSON header of
dtype/shape/offsets, then the raw tensors), so the llama.cpp environment needs only gguf and numpy."""
import json, sys
import numpy as np, gguf


def load_file(path):
    """Every tensor of a safetensors file as a numpy array (F32, F16 and BF16, the dtypes BLOOM ships in)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "F32":
            v = np.frombuffer(raw, dtype="<f4")
        elif t["dtype"] == "F16":
            v = np.frombuffer(raw, dtype="<f2")
        elif t["dtype"] == "BF16":
            v = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            sys.exit(f"hf2gguf: {path}: tensor {name} has dtype {t['dtype']}, not F32, F16 or BF16")
        out[name] = v.reshape(t["shape"])
    return out

src, out = sys.argv[1], sys.argv[2]
cfg = json.load(open(f"{src}/config.json"))
tok = json.load(open(f"{src}/tokenizer.json"))
H = cfg.get("hidden_size") or cfg["n_embed"]; L = cfg.get("n_layer") or cfg["num_hidden_layers"]
NH = cfg.get("n_head") or cfg["num_attention_heads"]; D = H // NH
st = {k.removeprefix("transformer."): v.astype(np.float32) for k, v in load_file(f"{src}/model.safetensors").items()}
w = gguf.GGUFWriter(out, "bloom")
w.add_context_length(2048); w.add_embedding_length(H); w.add_feed_forward_length(4 * H)
w.add_block_count(L); w.add_head_count(NH); w.add_head_count_kv(NH); w.add_layer_norm_eps(cfg.get("layer_norm_epsilon", 1e-5))
w.add_file_type(0)
vocab = tok["model"]["vocab"]; n = cfg["vocab_size"]
toks = [None] * n
for t, i in vocab.items(): toks[i] = t
special = {a["id"] for a in tok["added_tokens"] if a.get("special")}
toks = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(toks)]
types = [3 if i in special else 1 for i in range(n)]
merges = [" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]]
w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("bloom")
w.add_token_list(toks); w.add_token_types(types); w.add_token_merges(merges)
w.add_bos_token_id(cfg.get("bos_token_id", 1)); w.add_eos_token_id(cfg.get("eos_token_id", 2))
w.add_unk_token_id(0); w.add_pad_token_id(cfg.get("pad_token_id", 3)); w.add_add_bos_token(False)
def qkv(t):
    if t.ndim == 2:
        t = t.reshape(NH, 3, D, H); return np.concatenate([t[:, j].reshape(-1, H) for j in range(3)], 0)
    t = t.reshape(NH, 3, D); return np.concatenate([t[:, j].reshape(-1) for j in range(3)], 0)
w.add_tensor("token_embd.weight", st["word_embeddings.weight"])
for a, b in (("weight", "weight"), ("bias", "bias")):
    w.add_tensor(f"token_embd_norm.{a}", st[f"word_embeddings_layernorm.{b}"])
names = {"input_layernorm": "attn_norm", "self_attention.query_key_value": "attn_qkv", "self_attention.dense": "attn_output",
         "post_attention_layernorm": "ffn_norm", "mlp.dense_h_to_4h": "ffn_up", "mlp.dense_4h_to_h": "ffn_down"}
for i in range(L):
    for hf, gg in names.items():
        for part in ("weight", "bias"):
            t = st[f"h.{i}.{hf}.{part}"]
            w.add_tensor(f"blk.{i}.{gg}.{part}", qkv(t) if gg == "attn_qkv" else t)
w.add_tensor("output_norm.weight", st["ln_f.weight"]); w.add_tensor("output_norm.bias", st["ln_f.bias"])
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
print("wrote", out)
