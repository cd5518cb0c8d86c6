// ONNX models (.onnx, Protobuf through libonnx's onnx.proto): import node by node into the IR,
// and export with the option of external data files to escape Protobuf's 2 GiB message limit.
#pragma once
#include <string>

#include "runtime/ir/model.hpp"

namespace llmc::formats {

// Reads an ONNX model. Nodes keep their ONNX op, domain and attributes; initializers become
// Graph::weights (raw bytes borrowed zero-copy from the parsed message or, for external data,
// from the mapped data file next to the model); opset_import becomes Graph::opsets; arch "onnx".
// Unnamed nodes get "<op>_<index>" so that errors can name them. Throws Error naming the file
// and the node, tensor or field on: non-ONNX input, a node input that no graph input,
// initializer or earlier node output provides, unsupported attribute or tensor types (graphs,
// strings), and missing or short external data files.
Model read_onnx(const std::string& path);

// Writes the model atomically. With external_data, tensors larger than 1 KiB are stored in
// "<file name>.data" beside the model (also written atomically, 64-byte aligned offsets) and
// referenced by location/offset/length. Without it a model over 2 GiB throws.
void write_onnx(const Model& model, const std::string& path, bool external_data = false);

// Reads one serialized TensorProto (the input_*.pb / output_*.pb files of ONNX's node tests).
Tensor read_onnx_tensor(const std::string& path);

}  // namespace llmc::formats
