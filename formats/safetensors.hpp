// safetensors: u64 header length, JSON header {name: {dtype, shape, data_offsets}}, raw data.
// Reading maps the file and borrows tensors zero-copy; every offset is bounds-checked.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "runtime/ir/tensor.hpp"

namespace llmc::formats {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;            // borrowed from the mapping
  std::map<std::string, std::string> metadata;      // the optional __metadata__ string pairs
  std::vector<std::string> order;                   // tensor names in file offset order
};

// Reads one .safetensors file. Throws Error naming the file and tensor on any inconsistency:
// header past the end, unknown dtype, shape x dtype != byte length, overlapping or
// out-of-range offsets, holes in the data buffer.
SafetensorsFile read_safetensors(const std::string& path);

// Reads a checkpoint directory or file: model.safetensors, or the shards listed by
// model.safetensors.index.json (the index's weight_map must name every tensor's shard).
SafetensorsFile read_safetensors_checkpoint(const std::string& path);

// Writes tensors (in the given order, or sorted by name when empty) atomically.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {},
                       const std::vector<std::string>& order = {});

}  // namespace llmc::formats
