// Llama-architecture GGUF files as Hugging Face sees them: config.json from llama.* metadata,
// weights under HF names (Q/K rows un-permuted), and a tokenizer description.
#pragma once
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/gguf.hpp"
#include "runtime/ir/tensor.hpp"

namespace llmc::formats {

// An HF LlamaForCausalLM config.json object: model_type "llama", architectures, hidden_size,
// intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim,
// rms_norm_eps, rope_theta, vocab_size, max_position_embeddings, tie_word_embeddings (true when
// output.weight is absent), hidden_act "silu", attention_bias / mlp_bias (true when the file has
// attn_q.bias / ffn_up.bias), bos/eos_token_id when the tokenizer metadata has them, and
// rope_scaling {"rope_type": "linear", "factor"} for linear rope scaling.
// Sources: llama.embedding_length, llama.feed_forward_length, llama.block_count,
// llama.attention.head_count, llama.attention.head_count_kv (default: head_count, as llama.cpp),
// llama.attention.layer_norm_rms_epsilon, llama.rope.freq_base (default 10000, as llama.cpp),
// llama.context_length, llama.vocab_size (else the token count, else token_embd's rows),
// llama.attention.key_length (else hidden_size / head_count).
// Throws Error naming the file and the missing key; also for general.architecture other than
// "llama", partial rotary (llama.rope.dimension_count != head_dim), experts (MoE), other rope
// scaling types, and Llama-3.1 rope_freqs.weight, none of which an HF Llama config expresses here.
nlohmann::json gguf_llama_config(const GgufFile& f);

// Every tensor under its HF name, dequantized to f32 in row-major [out, in] order:
//   token_embd.weight -> model.embed_tokens.weight      output_norm.weight -> model.norm.weight
//   output.weight     -> lm_head.weight (absent when tied; see tie_word_embeddings)
//   blk.N.attn_q/attn_k/attn_v/attn_output -> model.layers.N.self_attn.{q,k,v,o}_proj
//   blk.N.ffn_gate/ffn_up/ffn_down         -> model.layers.N.mlp.{gate,up,down}_proj
//   blk.N.attn_norm -> model.layers.N.input_layernorm, blk.N.ffn_norm -> ...post_attention_layernorm
// (".weight" and ".bias" alike). Q and K (weights and biases) are un-permuted with head_count and
// head_count_kv so that HF's rotate_half rotary applies (see llama_unpermute_qk).
// Throws Error naming a tensor it cannot map.
std::map<std::string, Tensor> gguf_llama_weights(const GgufFile& f);

// Inverse of llama.cpp convert_hf_to_gguf.py LlamaModel.permute, which reorders the rows of each
// head for GGML's interleaved (GPT-J style) rope:
//   w.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2).reshape(rows, cols)
// i.e. GGUF row h*hd + 2j + i holds HF row h*hd + i*hd/2 + j. `w` is f32 [rows, ...] (rank 1 or 2).
Tensor llama_unpermute_qk(const Tensor& w, int64_t n_head, const std::string& what);

// A tokenizer description from tokenizer.ggml.* metadata, for runtime/tokenizer to build from:
// {
//   "type":        "bpe" (tokenizer.ggml.model "gpt2": byte-level BPE) | "spm" ("llama": SentencePiece),
//   "model":       tokenizer.ggml.model as stored,
//   "pre":         tokenizer.ggml.pre (the pre-tokenizer regex family, e.g. "smollm", "llama-bpe"),
//                  "default" when absent (llama.cpp's name),
//   "vocab":       [token strings, by id],
//   "merges":      ["a b", ...] in priority order (bpe; [] for spm),
//   "scores":      [f32 per token] (spm; [] when absent),
//   "token_types": [int per token: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
//                   6 byte] ([] when absent),
//   "bos_id", "eos_id", "unk_id", "pad_id": token id or null when absent,
//   "add_bos", "add_eos": bool (tokenizer.ggml.add_bos_token / add_eos_token; when absent
//                  add_bos defaults to true for spm and false for bpe, add_eos to false),
//   "add_space_prefix": bool (tokenizer.ggml.add_space_prefix; default true for spm, false for bpe),
//   "chat_template": string or null
// }
// Throws Error naming the key for a missing vocab/merges/scores, per-token arrays whose length is
// not the vocab size, special ids out of range, or an unsupported tokenizer model.
nlohmann::json gguf_tokenizer_json(const GgufFile& f);

}  // namespace llmc::formats
