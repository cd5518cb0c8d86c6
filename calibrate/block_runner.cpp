#include "calibrate/block_runner.hpp"

#include <regex>

namespace llmc::calibrate {

std::vector<Block> find_blocks(const Graph& g) {
  static const std::regex re(R"(^(.*?\b(?:layers|layer|h|blocks)\.\d+)\.)");
  std::vector<Block> out;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    std::smatch m;
    if (!std::regex_search(g.nodes[k].name, m, re)) continue;
    const std::string name = m[1];
    if (!out.empty() && out.back().name == name && out.back().end == k) {
      out.back().end = k + 1;
      continue;
    }
    for (auto& b : out)
      if (b.name == name) throw Error("graph: nodes of block '" + name + "' are not contiguous", ErrorKind::Runtime);
    out.push_back({name, k, k + 1});
  }
  return out;
}

BlockRunner::BlockRunner(runtime::Session& session, std::vector<std::vector<int64_t>> samples)
    : session_(session), samples_(std::move(samples)), blocks_(find_blocks(session.model().graph)) {
  if (blocks_.empty()) throw Error(session.model().source + ": no decoder blocks found to calibrate", ErrorKind::Runtime);
}

void BlockRunner::start() {
  const Graph& g = session_.model().graph;
  values_.assign(samples_.size(), {});
  for (size_t s = 0; s < samples_.size(); ++s) {
    values_[s][g.inputs.at(0).name] =
        Tensor::from_i64({static_cast<int64_t>(samples_[s].size())}, samples_[s]);
    session_.reset();
    session_.run_nodes(values_[s], 0, blocks_.front().begin);
  }
  pos_ = blocks_.front().begin;
}

void BlockRunner::run_block(size_t b, const runtime::NodeHook& hook, bool advance) {
  const Block& blk = blocks_.at(b);
  if (blk.begin != pos_) throw Error("calibration: block '" + blk.name + "' run out of order", ErrorKind::Runtime);
  for (auto& v : values_) {
    session_.reset();
    if (advance) {
      session_.run_nodes(v, blk.begin, blk.end, hook);
    } else {
      runtime::ValueMap copy = v;  // tensors are shared, not copied
      session_.run_nodes(copy, blk.begin, blk.end, hook);
    }
  }
  if (advance) pos_ = blk.end;
}

void BlockRunner::run_tail(const runtime::NodeHook& hook) {
  const size_t n = session_.model().graph.nodes.size();
  for (auto& v : values_) {
    session_.reset();
    runtime::ValueMap copy = v;
    session_.run_nodes(copy, pos_, n, hook);
  }
}

}  // namespace llmc::calibrate
