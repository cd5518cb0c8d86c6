// A SentencePiece model file (tokenizer.model) through libsentencepiece, when the build found it.
#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/hf_tokenizer.hpp"
#include "runtime/tokenizer/unicode.hpp"

#ifdef LLMC_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace llmc::runtime {

#ifdef LLMC_HAVE_SENTENCEPIECE
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const auto status = sp_.Load(path);
    if (!status.ok()) throw Error(path + ": cannot load SentencePiece model: " + status.ToString());
  }

  std::vector<int64_t> encode(const std::string& text, bool add_special) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) throw Error(path_ + ": SentencePiece encode failed: " + status.ToString(), ErrorKind::Runtime);
    std::vector<int64_t> out;
    out.reserve(ids.size() + 1);
    if (add_special && sp_.bos_id() >= 0) out.push_back(sp_.bos_id());
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  // sentencepiece drops control pieces itself; kept ones are written as their piece, with each
  // run of ordinary pieces between them decoded on its own.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::string text;
    std::vector<int> run;
    auto flush = [&]() {
      if (run.empty()) return;
      std::string s;
      const auto status = sp_.Decode(run, &s);
      if (!status.ok()) throw Error(path_ + ": SentencePiece decode failed: " + status.ToString(), ErrorKind::Runtime);
      text += s;
      run.clear();
    };
    for (int64_t id : ids) {
      check_id(id);
      if (sp_.IsControl(static_cast<int>(id))) {
        if (skip_special) continue;
        flush();
        text += sp_.IdToPiece(static_cast<int>(id));
      } else {
        run.push_back(static_cast<int>(id));
      }
    }
    flush();
    return text;
  }

  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::optional<int64_t> bos_id() const override { return opt(sp_.bos_id()); }
  std::optional<int64_t> eos_id() const override { return opt(sp_.eos_id()); }
  std::string token(int64_t id) const override {
    check_id(id);
    return sp_.IdToPiece(static_cast<int>(id));
  }
  std::optional<int64_t> token_id(const std::string& t) const override {
    const int id = sp_.PieceToId(t);
    if (id == sp_.unk_id() && t != sp_.IdToPiece(id)) return std::nullopt;
    return id;
  }
  bool is_special(int64_t id) const override {
    check_id(id);
    return sp_.IsControl(static_cast<int>(id));
  }

 private:
  static std::optional<int64_t> opt(int id) { return id >= 0 ? std::optional<int64_t>(id) : std::nullopt; }
  void check_id(int64_t id) const {
    if (id < 0 || id >= sp_.GetPieceSize())
      throw Error(path_ + ": token id " + std::to_string(id) + " is out of range (vocab size " +
                  std::to_string(sp_.GetPieceSize()) + ")");
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& model_path) {
  return std::make_unique<SentencePieceTokenizer>(model_path);
}
#else
std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& model_path) {
  throw Error(model_path + ": this build has no SentencePiece support (install libsentencepiece-dev and reconfigure)",
              ErrorKind::Runtime);
}
#endif

}  // namespace llmc::runtime
