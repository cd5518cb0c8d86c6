// SentencePiece-style BPE from a GGUF description (tokens, scores, token types), as llama.cpp's
// llm_tokenizer_spm runs it: spaces become U+2581, a space is prepended, adjacent symbols merge
// best-score-first (leftmost among equals), and what no token covers falls back to <0xXX> bytes.
#include <algorithm>
#include <array>
#include <queue>
#include <string_view>
#include <unordered_map>

#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/hf_tokenizer.hpp"
#include "runtime/tokenizer/unicode.hpp"

namespace llmc::runtime {

using nlohmann::json;

namespace {

// Lets the maps be searched with string_views of the text without building strings.
struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using IdMap = std::unordered_map<std::string, int64_t, SvHash, std::equal_to<>>;

enum TokenType : int { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
const std::string kSpace = "\u2581";

class SpmGgufTokenizer : public Tokenizer {
 public:
  explicit SpmGgufTokenizer(const json& d) {
    vocab_ = d.at("vocab").get<std::vector<std::string>>();
    const size_t n = vocab_.size();
    if (n == 0) throw Error("GGUF tokenizer description: 'vocab' is empty");
    scores_.assign(n, 0.0f);
    if (d.contains("scores") && !d["scores"].empty()) {
      if (d["scores"].size() != n) throw Error("GGUF tokenizer description: 'scores' length differs from 'vocab'");
      for (size_t i = 0; i < n; ++i) scores_[i] = d["scores"][i].get<float>();
    }
    types_.assign(n, kNormal);
    if (d.contains("token_types") && !d["token_types"].empty()) {
      if (d["token_types"].size() != n) throw Error("GGUF tokenizer description: 'token_types' length differs from 'vocab'");
      for (size_t i = 0; i < n; ++i) types_[i] = d["token_types"][i].get<int>();
    }
    byte_ids_.fill(-1);
    for (size_t i = 0; i < n; ++i) {
      const std::string& t = vocab_[i];
      all_ids_.emplace(t, static_cast<int64_t>(i));
      // sentencepiece merges into normal, user-defined and unused pieces, never control/byte/unk.
      if (types_[i] == kNormal || types_[i] == kUserDefined || types_[i] == kUnused)
        piece_ids_.emplace(t, static_cast<int64_t>(i));
      if (types_[i] == kByte && t.size() == 6 && t.compare(0, 3, "<0x") == 0)
        byte_ids_[std::stoi(t.substr(3, 2), nullptr, 16)] = static_cast<int64_t>(i);
      if (types_[i] == kUserDefined) user_defined_.push_back(static_cast<int64_t>(i));
    }
    std::stable_sort(user_defined_.begin(), user_defined_.end(),
                     [&](int64_t a, int64_t b) { return vocab_[a].size() > vocab_[b].size(); });
    auto opt_id = [&](const char* key) -> std::optional<int64_t> {
      if (!d.contains(key) || d[key].is_null()) return std::nullopt;
      const int64_t id = d[key].get<int64_t>();
      if (id < 0 || id >= static_cast<int64_t>(n))
        throw Error(std::string("GGUF tokenizer description: '") + key + "' " + std::to_string(id) + " is out of range");
      return id;
    };
    bos_ = opt_id("bos_id");
    eos_ = opt_id("eos_id");
    unk_ = opt_id("unk_id");
    add_bos_ = d.value("add_bos", true);
    add_eos_ = d.value("add_eos", false);
    add_space_prefix_ = d.value("add_space_prefix", true);
  }

  std::vector<int64_t> encode(const std::string& text, bool add_special) const override {
    std::vector<int64_t> out;
    if (add_special && add_bos_ && bos_) out.push_back(*bos_);
    // llama.cpp's tokenizer_st_partition: user-defined tokens are cut out of the text first, and
    // the text after one gets the space prefix again.
    bool prev_special = true;
    size_t pos = 0;
    auto raw = [&](size_t b, size_t e) {
      if (e <= b) return;
      std::string s = (add_space_prefix_ && prev_special) ? " " : "";
      s.append(text, b, e - b);
      std::string esc;
      esc.reserve(s.size() + s.size() / 2);
      for (char c : s) {
        if (c == ' ') esc += kSpace;
        else esc += c;
      }
      tokenize(esc, out);
      prev_special = false;
    };
    for (size_t i = 0; i < text.size() && !user_defined_.empty();) {
      int64_t hit = -1;
      for (int64_t id : user_defined_)
        if (!vocab_[id].empty() && text.compare(i, vocab_[id].size(), vocab_[id]) == 0) {
          hit = id;
          break;
        }
      if (hit < 0) {
        ++i;
        continue;
      }
      raw(pos, i);
      out.push_back(hit);
      prev_special = true;
      i += vocab_[hit].size();
      pos = i;
    }
    raw(pos, text.size());
    if (add_special && add_eos_ && eos_) out.push_back(*eos_);
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::string bytes;
    for (int64_t id : ids) {
      check_id(id);
      const int type = types_[id];
      if (type == kControl) {
        if (!skip_special) bytes += vocab_[id];
      } else if (type == kByte && vocab_[id].size() == 6) {
        bytes += static_cast<char>(std::stoi(vocab_[id].substr(3, 2), nullptr, 16));
      } else if (type == kUnknown) {
        bytes += " \u2047 ";  // what sentencepiece renders an unknown piece as
      } else {
        const std::string& t = vocab_[id];
        for (size_t k = 0; k < t.size();) {
          if (t.compare(k, kSpace.size(), kSpace) == 0) {
            bytes += ' ';
            k += kSpace.size();
          } else {
            bytes += t[k++];
          }
        }
      }
    }
    if (add_space_prefix_ && !bytes.empty() && bytes[0] == ' ') bytes.erase(0, 1);
    return unicode::lossy(bytes);
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }
  std::optional<int64_t> bos_id() const override { return bos_; }
  std::optional<int64_t> eos_id() const override { return eos_; }
  std::string token(int64_t id) const override {
    check_id(id);
    return vocab_[id];
  }
  std::optional<int64_t> token_id(const std::string& t) const override {
    auto it = all_ids_.find(t);
    return it == all_ids_.end() ? std::nullopt : std::optional<int64_t>(it->second);
  }
  bool is_special(int64_t id) const override {
    check_id(id);
    return types_[id] == kControl;
  }

 private:
  void check_id(int64_t id) const {
    if (id < 0 || id >= static_cast<int64_t>(vocab_.size()))
      throw Error("tokenizer: token id " + std::to_string(id) + " is out of range (vocab size " +
                  std::to_string(vocab_.size()) + ")");
  }

  struct Sym {
    size_t off, n;
    int prev, next;
  };

  void tokenize(const std::string& text, std::vector<int64_t>& out) const {
    static const size_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};  // llama.cpp unicode_len_utf8
    std::vector<Sym> syms;
    for (size_t off = 0; off < text.size();) {
      const size_t n = std::min(kLen[static_cast<unsigned char>(text[off]) >> 4], text.size() - off);
      const int idx = static_cast<int>(syms.size());
      syms.push_back({off, n, idx - 1, off + n == text.size() ? -1 : idx + 1});
      off += n;
    }
    struct Bigram {
      int left, right;
      float score;
      size_t size;
    };
    auto worse = [](const Bigram& a, const Bigram& b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> q(worse);
    std::unordered_map<std::string, std::pair<std::string, std::string>> rev_merge;  // for unused pieces
    auto try_add = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      const std::string_view sv(text.data() + syms[l].off, syms[l].n + syms[r].n);
      auto it = piece_ids_.find(sv);
      if (it == piece_ids_.end()) return;
      q.push({l, r, scores_[it->second], sv.size()});
      if (types_[it->second] == kUnused)
        rev_merge[std::string(sv)] = {text.substr(syms[l].off, syms[l].n), text.substr(syms[r].off, syms[r].n)};
    };
    for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);
    while (!q.empty()) {
      const Bigram b = q.top();
      q.pop();
      Sym& l = syms[b.left];
      Sym& r = syms[b.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    for (int i = syms.empty() ? -1 : 0; i != -1; i = syms[i].next)
      resegment(std::string_view(text.data() + syms[i].off, syms[i].n), rev_merge, out);
  }

  void resegment(std::string_view s, const std::unordered_map<std::string, std::pair<std::string, std::string>>& rev,
                 std::vector<int64_t>& out) const {
    auto it = piece_ids_.find(s);
    if (it != piece_ids_.end() && types_[it->second] != kUnused) {
      out.push_back(it->second);
      return;
    }
    if (auto r = rev.find(std::string(s)); r != rev.end()) {
      resegment(r->second.first, rev, out);
      resegment(r->second.second, rev, out);
      return;
    }
    for (unsigned char c : s) {
      if (byte_ids_[c] >= 0) out.push_back(byte_ids_[c]);
      else if (unk_) out.push_back(*unk_);
      else throw Error("tokenizer: byte 0x" + std::to_string(c) + " has no <0xXX> token and the vocab has no unk");
    }
  }

  std::vector<std::string> vocab_;
  std::vector<float> scores_;
  std::vector<int> types_;
  IdMap all_ids_, piece_ids_;
  std::array<int64_t, 256> byte_ids_{};
  std::vector<int64_t> user_defined_;
  std::optional<int64_t> bos_, eos_, unk_;
  bool add_bos_ = true, add_eos_ = false, add_space_prefix_ = true;
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_gguf_tokenizer(const json& description) {
  return std::make_unique<SpmGgufTokenizer>(description);
}

}  // namespace llmc::runtime
