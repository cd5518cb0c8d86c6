// Models of a known architecture's shape with random weights, for speed measurements where the
// checkpoint is not at hand (the GPU machines): built by the same builder as the real model, then
// compressed layouts filled directly. The values are random, never zeros or constants.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/ir/model.hpp"

namespace llmc::runtime {

// "tinyllama": TinyLlama-1.1B (hidden 2048, 22 layers, 32 heads, 4 KV heads, intermediate 5632,
// vocab 32000); "smollm2": SmolLM2-135M (hidden 576, 30 layers, 9 heads, 3 KV heads,
// intermediate 1536, vocab 49152; head untied). Throws a usage Error listing the known names.
nlohmann::json synthetic_config(const std::string& name);

// scheme:
//  "f16"        dense weights, N(0, 0.02)-like (uniform of that spread), norms near 1;
//  "sparse24"   the same with two of every four inputs of each decoder linear zeroed (2:4, which
//               pair kept varies), so the CUDA runtime runs them through cuSPARSELt; head dense;
//  "w4a16"      every decoder linear INT4 symmetric g128 (codes uniform over [−8, 7], f16 scales
//               around 0.0043, i.e. weights of spread ~0.02 as RTN of the f16 model would give),
//               the head dense as the compression passes leave it;
//  "sparse24-w4a16" the w4a16 weights with two of every four codes of a row at value 0 (2:4, as
//               quantizing a 2:4-pruned model leaves them), so the CUDA runtime decodes them
//               through the sparse tensor-core GEMV (CudaOptions::sparse_gemv);
//  "w4a16-head" the same as w4a16 with the head quantized too (--include-head);
//  "w4a16-act-order" the w4a16 weights with act-order groups: each input's columns assigned to
//               groups through a random permutation (g_idx), the same for the linears that share
//               that input, as GPTQ's act-order assigns them; the down projections without, as
//               `llmcompress quantize` writes them (their order moved into gate's and up's rows);
//  "w8a16"      every decoder linear INT8 symmetric per channel.
Model synthetic_model(const std::string& name, const std::string& scheme, uint64_t seed);

}  // namespace llmc::runtime
